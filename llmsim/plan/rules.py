"""Compiled rules: matchers, templates and overrides ready for every request.

A rule's reply template was checked when the scenario was validated; here it is compiled once
in Jinja2's sandbox with ``StrictUndefined``, so a misspelt name is an error, not empty text.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

from llmsim.plan.plan import LatencyPlan
from llmsim.scenario.scripting import ENDPOINTS, ErrorReply, Rule

RENDER = SandboxedEnvironment(
    autoescape=False, keep_trailing_newline=True, undefined=StrictUndefined
)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule, ready to match and apply."""

    index: int
    label: str
    endpoints: frozenset[str] | None
    model_glob: str | None
    prompt_pattern: re.Pattern[str] | None
    headers: tuple[tuple[bytes, str], ...]
    reply: Template | None
    error: str | ErrorReply | None
    latency: LatencyPlan | None
    stall_after_tokens: int | None
    stall: float
    disconnect_after_tokens: int | None

    def matches(self, path: str, model: str, prompt: str, headers: dict[bytes, str]) -> bool:
        """Whether a request with these properties is this rule's."""
        if self.endpoints is not None and path not in self.endpoints:
            return False
        if self.model_glob is not None and not fnmatch.fnmatchcase(model, self.model_glob):
            return False
        if self.prompt_pattern is not None and self.prompt_pattern.search(prompt) is None:
            return False
        return all(headers.get(name) == value for name, value in self.headers)


def compile_rule(index: int, rule: Rule, latency: LatencyPlan | None) -> CompiledRule:
    """A scenario rule, compiled; ``latency`` is its overlay already merged and compiled."""
    when = rule.when
    stream = rule.stream
    return CompiledRule(
        index=index,
        label=f"rule {index}" + (f" ({rule.name})" if rule.name else ""),
        endpoints=frozenset(ENDPOINTS.get(e, e) for e in when.endpoint) if when.endpoint else None,
        model_glob=when.model,
        prompt_pattern=re.compile(when.prompt_matches) if when.prompt_matches else None,
        headers=tuple((k.lower().encode(), v) for k, v in (when.header or {}).items()),
        reply=RENDER.from_string(rule.reply) if rule.reply is not None else None,
        error=rule.error,
        latency=latency,
        stall_after_tokens=stream.stall_after_tokens if stream else None,
        stall=(stream.stall or 0.0) if stream else 0.0,
        disconnect_after_tokens=stream.disconnect_after_tokens if stream else None,
    )


def first_match(
    rules: tuple[CompiledRule, ...], path: str, model: str, prompt: str, headers: dict[bytes, str]
) -> CompiledRule | None:
    """The first rule matching the request, if any."""
    for rule in rules:
        if rule.matches(path, model, prompt, headers):
            return rule
    return None


def render_reply(rule: CompiledRule, context: dict[str, Any]) -> str:
    """The rule's reply for one choice (raises on a template error at render time)."""
    assert rule.reply is not None
    return rule.reply.render(context)
