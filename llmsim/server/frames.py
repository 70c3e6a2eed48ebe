"""Pre-encoded pieces of response bodies and stream frames.

A streamed chunk differs from its neighbours only in one JSON value (the token text), so each
response builds the bytes around that value once and every token costs one ``orjson.dumps`` of
its text and one join.
"""

from __future__ import annotations

import orjson

DONE = b"data: [DONE]\n\n"


def usage_object(prompt_tokens: int, completion_tokens: int) -> dict[str, object]:
    """The ``usage`` object of chat and completions responses (API-CHAT-2)."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


class ChunkTemplate:
    """An SSE ``data:`` frame with one slot for a JSON value: ``head + value + tail``."""

    __slots__ = ("_head", "_tail")

    def __init__(self, head: bytes, tail: bytes):
        self._head = b"data: " + head
        self._tail = tail + b"\n\n"

    def fill(self, value: object) -> bytes:
        """The frame with ``value`` (JSON-encoded) in its slot."""
        return b"".join((self._head, orjson.dumps(value), self._tail))

    def fill_raw(self, encoded: bytes) -> bytes:
        """The frame with already-encoded JSON in its slot."""
        return b"".join((self._head, encoded, self._tail))


def envelope(request_id: str, obj: str, created: int, model: str) -> bytes:
    """The common start of a chunk: ``{"id":…,"object":…,"created":…,"model":…`` (no brace end)."""
    return orjson.dumps({"id": request_id, "object": obj, "created": created, "model": model})[:-1]


def usage_frame(envelope_bytes: bytes, prompt_tokens: int, completion_tokens: int) -> bytes:
    """The final usage chunk: no choices, the usage object."""
    usage = orjson.dumps(usage_object(prompt_tokens, completion_tokens))
    return b"".join((b"data: ", envelope_bytes, b',"choices":[],"usage":', usage, b"}\n\n"))


class StreamFrames:
    """The pre-encoded frames of one streamed response (one choice)."""

    __slots__ = ("_envelope", "_finish", "_token", "first")

    def __init__(
        self, envelope_bytes: bytes, token: ChunkTemplate, finish: ChunkTemplate, first: bytes
    ):
        self._envelope = envelope_bytes
        self._token = token
        self._finish = finish
        self.first = first
        """Frames sent just before the first token (chat's role chunk; empty for completions)."""

    def token(self, text: str) -> bytes:
        """The chunk carrying one token's text."""
        return self._token.fill(text)

    def tail(self, finish_reason: str, usage: tuple[int, int] | None) -> bytes:
        """The finish chunk, the usage chunk when ``usage`` (prompt, completion) is given, and
        ``[DONE]``."""
        frames = self._finish.fill(finish_reason)
        if usage is not None:
            frames += usage_frame(self._envelope, *usage)
        return frames + DONE
