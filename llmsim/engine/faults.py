"""Failures on purpose: upstream's injected failure types and the ``X-Return-Error`` header
(FAIL-1, FAIL-2, FAIL-3), and errors that scenario rules ask for."""

from __future__ import annotations

import random

from llmsim.errors import LlmsimError
from llmsim.scenario.failures import FAILURE_TYPES
from llmsim.scenario.scripting import ErrorReply


class ScriptedError(LlmsimError):
    """An error a scenario asked for: any status, and an explicit type when given."""

    def __init__(
        self, status: int, message: str, param: str | None = None, kind: str | None = None
    ):
        super().__init__(message, param=param, status=status)
        self._kind = kind

    @property
    def error_type(self) -> str:
        """The configured type, else the status's OpenAI type."""
        return self._kind or super().error_type


def failure(kind: str, model: str) -> ScriptedError:
    """Upstream's error for an injected failure type (FAIL-2); ``model`` is model.name."""
    if kind == "rate_limit":
        return ScriptedError(
            429,
            f"Rate limit reached for {model} in organization org-xxx on requests per min (RPM): "
            "Limit 3, Used 3, Requested 1.",
        )
    if kind == "invalid_api_key":
        return ScriptedError(401, "Incorrect API key provided.")
    if kind == "context_length":
        return ScriptedError(
            400,
            "This model's maximum context length is 4096 tokens. However, your messages "
            "resulted in 4500 tokens.",
            param="messages",
        )
    if kind == "server_error":
        return ScriptedError(503, "The server is overloaded or not ready yet.")
    if kind == "invalid_request":
        return ScriptedError(
            400, "Invalid request: missing required parameter 'model'.", param="model"
        )
    if kind == "model_not_found":
        return ScriptedError(404, f"The model '{model}-nonexistent' does not exist", param="model")
    raise ValueError(f"unknown failure type {kind!r}")


def rule_error(error: str | ErrorReply, model: str) -> ScriptedError:
    """A rule's ``error``: a failure type's error, or the status, type and message given."""
    if isinstance(error, str):
        return failure(error, model)
    return ScriptedError(error.status, error.message, kind=error.type)


def injected_failure(
    rate: float, types: tuple[str, ...], rng: random.Random, model: str
) -> ScriptedError | None:
    """With probability ``rate`` percent, a failure of a type drawn uniformly (FAIL-1)."""
    if rate <= 0 or rng.random() * 100 >= rate:
        return None
    return failure(rng.choice(types or FAILURE_TYPES), model)


def header_error(value: bytes) -> ScriptedError:
    """The error ``X-Return-Error: <status>`` asks for (FAIL-3)."""
    text = value.decode("latin-1")
    try:
        status = int(text)
    except ValueError:
        status = 0
    if not 400 <= status <= 599:
        if status:
            message = f'Invalid X-Return-Error header value "{text}": must be between 400 and 599'
        else:
            message = f'Invalid X-Return-Error header value "{text}": must be an integer'
        return ScriptedError(400, message)
    return ScriptedError(
        status, f"Simulated error triggered by X-Return-Error header (code {status})"
    )
