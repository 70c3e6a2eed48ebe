"""Pre-encoded pieces of response bodies and stream frames.

A streamed chunk differs from its neighbours only in one or two JSON values (the token text and,
when asked for, its logprobs), so each choice builds the bytes around them once and every token
costs one ``orjson.dumps`` of its text and one join.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

DONE = b"data: [DONE]\n\n"

LogprobsBuilder = Callable[[str, int, int], object]
"""(token text, position, character offset) -> the chunk's ``logprobs`` value."""


def usage_object(
    prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = 0
) -> dict[str, object]:
    """The ``usage`` object of chat and completions responses (API-CHAT-2);
    ``cached_tokens=None`` gives ``prompt_tokens_details: null``."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": None
        if cached_tokens is None
        else {"cached_tokens": cached_tokens},
    }


def envelope(request_id: str, obj: str, created: int, model: str) -> bytes:
    """The common start of a chunk: ``{"id":…,"object":…,"created":…,"model":…`` (no brace end)."""
    return orjson.dumps({"id": request_id, "object": obj, "created": created, "model": model})[:-1]


def usage_frame(envelope_bytes: bytes, usage: dict[str, object]) -> bytes:
    """The final usage chunk: no choices, the usage object."""
    encoded = orjson.dumps(usage)
    return b"".join((b"data: ", envelope_bytes, b',"choices":[],"usage":', encoded, b"}\n\n"))


class ChoiceFrames:
    """The pre-encoded frames of one streamed choice.

    A token chunk is ``head + json(text) + middle + json(logprobs) + tail``; without logprobs the
    middle and tail are joined and the logprobs value is ``null``. A chat answer that reasons
    first sends its first ``reasoning`` tokens as ``reasoning_head + json(text)`` chunks.
    """

    __slots__ = (
        "_finish_head", "_finish_tail", "_head", "_logprobs", "_middle", "_reasoning",
        "_reasoning_head", "_reasoning_tail", "_tail", "first", "image", "prepared",
    )  # fmt: skip

    def __init__(
        self,
        head: bytes,
        middle: bytes,
        tail: bytes,
        finish_head: bytes,
        finish_tail: bytes,
        first: bytes,
        logprobs: LogprobsBuilder | None,
        reasoning: int = 0,
        reasoning_head: bytes = b"",
    ):
        self._head = b"data: " + head
        self._logprobs = logprobs
        if logprobs is None:
            self._middle, self._tail = middle + b"null" + tail + b"\n\n", b""
        else:
            self._middle, self._tail = middle, tail + b"\n\n"
        self._finish_head = b"data: " + finish_head
        self._finish_tail = finish_tail + b"\n\n"
        self.first = first
        """Frames sent just before the first token (chat's role chunk; empty for completions)."""
        self.prepared: list[bytes] | None = None
        """Ready frames of a tool-call answer, one per token."""
        self._reasoning = reasoning
        self._reasoning_head = b"data: " + reasoning_head
        self._reasoning_tail = b'},"logprobs":null' + tail + b"\n\n"
        self.image = b""
        """The chunk of an omni answer's image, sent before the finish chunks."""

    def token(self, text: str, position: int, offset: int) -> bytes:
        """The chunk carrying one token (``position`` and character ``offset`` in the answer);
        the first ``reasoning`` tokens go out as reasoning deltas, without logprobs."""
        if position < self._reasoning:
            return b"".join((self._reasoning_head, orjson.dumps(text), self._reasoning_tail))
        if self._logprobs is None:
            return b"".join((self._head, orjson.dumps(text), self._middle))
        logprobs = orjson.dumps(self._logprobs(text, position, offset))
        return b"".join((self._head, orjson.dumps(text), self._middle, logprobs, self._tail))

    def finish(self, reason: str) -> bytes:
        """The chunk that ends the choice with its finish reason."""
        return b"".join((self._finish_head, orjson.dumps(reason), self._finish_tail))
