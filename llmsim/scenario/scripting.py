"""The ``rules`` and ``phases`` sections: what happens to whom, and when.

Rules are checked per request, first match wins; a rule can reply from a Jinja2 template (run in
a sandbox), fail the request, change its latency, or stall or cut its stream. Phases overlay
``latency``, ``failures`` and ``responses`` for a window of time or from the N-th request on.
Templates are compiled here, once, so a broken one is a validation error; request content is
never compiled as a template.
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field, field_validator, model_validator

from llmsim.scenario.base import Section
from llmsim.scenario.failures import FailureType
from llmsim.scenario.overlays import FailuresOverlay, LatencyOverlay, ResponsesOverlay
from llmsim.scenario.units import Duration

ENDPOINTS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}
"""Endpoint names a rule may match, and their paths (a path may be given instead)."""

TEMPLATES = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)


def check_template(source: str) -> None:
    """Raise ``ValueError`` when a reply template does not compile or reaches for private
    attributes (``__class__``, ``_x``) that the sandbox would refuse at render time."""
    try:
        tree = TEMPLATES.parse(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template error at line {exc.lineno}: {exc.message}") from None
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        name: object = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Name):
            name = node.name
        if isinstance(name, str) and name.startswith("_"):
            raise ValueError(
                f"template line {node.lineno} reaches for '{name}': private names are not allowed"
            )


class RuleMatch(Section):
    """When a rule applies; every condition given must hold (none: every request)."""

    endpoint: list[str] | None = Field(
        default=None, description="chat, completions, or a path; one or a list."
    )
    model: str | None = Field(default=None, description="Glob on the requested model/adapter.")
    prompt_matches: str | None = Field(
        default=None, description="Regex searched in the prompt (last user message for chat)."
    )
    header: dict[str, str] | None = Field(
        default=None, description="Request headers that must have these values."
    )

    @field_validator("endpoint", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("endpoint")
    @classmethod
    def _known_endpoints(cls, value: list[str] | None) -> list[str] | None:
        for endpoint in value or []:
            if endpoint not in ENDPOINTS and endpoint not in ENDPOINTS.values():
                raise ValueError(f"unknown endpoint {endpoint!r}; use {', '.join(ENDPOINTS)}")
        return value

    @field_validator("prompt_matches")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class ErrorReply(Section):
    """An error a rule answers with."""

    status: int = Field(ge=400, le=599)
    type: str | None = Field(default=None, description="Default: the status's OpenAI type.")
    message: str = "Simulated error"


class StreamEffects(Section):
    """Scripted stream faults."""

    stall_after_tokens: int | None = Field(default=None, ge=0)
    stall: Duration | None = Field(default=None, description="Pause after stall-after-tokens.")
    disconnect_after_tokens: int | None = Field(
        default=None, ge=0, description="Close the connection after this many tokens."
    )

    @model_validator(mode="after")
    def _stall_pair(self) -> StreamEffects:
        if (self.stall_after_tokens is None) != (self.stall is None):
            raise ValueError("stall-after-tokens and stall go together")
        return self


class Rule(Section):
    """What happens to requests that match ``when``."""

    name: str | None = None
    when: RuleMatch = RuleMatch()
    reply: str | None = Field(
        default=None, description="Jinja2 template of the answer (sandboxed)."
    )
    error: FailureType | ErrorReply | None = Field(
        default=None, description="A failure type, or {status, type, message}."
    )
    latency: LatencyOverlay | None = None  # type: ignore[valid-type]
    stream: StreamEffects | None = None

    @field_validator("reply")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            check_template(value)
        return value

    @model_validator(mode="after")
    def _one_answer(self) -> Rule:
        if self.reply is not None and self.error is not None:
            raise ValueError("a rule replies or fails, not both")
        return self


class Phase(Section):
    """A window during which ``latency``, ``failures`` and ``responses`` are overlaid."""

    name: str = Field(min_length=1)
    start: Duration | None = Field(default=None, description="From the moment the server is ready.")
    after_requests: int | None = Field(
        default=None, ge=0, description="Start with the (N+1)-th generation request."
    )
    duration: Duration | None = Field(default=None, description="Omitted: until the next phase.")
    latency: LatencyOverlay | None = None  # type: ignore[valid-type]
    failures: FailuresOverlay | None = None  # type: ignore[valid-type]
    responses: ResponsesOverlay | None = None  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _one_start(self) -> Phase:
        if (self.start is None) == (self.after_requests is None):
            raise ValueError("give either start or after-requests")
        return self
