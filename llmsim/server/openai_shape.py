"""The response shape chat and text completions share: ``choices`` bodies, ``data:`` chunks
with a common envelope, finish chunks after every choice has ended, an optional usage chunk and
``[DONE]`` (API-CHAT-2, API-CHAT-4, API-CMPL-2, API-CMPL-3)."""

from __future__ import annotations

import time
from typing import Any

from llmsim.engine.engine import Choice
from llmsim.engine.generation import Generation
from llmsim.errors import LlmsimError
from llmsim.server.errors import body_for
from llmsim.server.frames import DONE, ChoiceFrames, envelope, usage_frame
from llmsim.server.generation import REMOTE_DECODE_PARAMS, Answer
from llmsim.server.protocol import GenerationRequest


class OpenAIStream:
    """The frames of a streamed chat or completions response."""

    __slots__ = ("_answer", "_head", "choices")

    def __init__(self, answer: Answer[GenerationRequest], head: bytes, choices: list[ChoiceFrames]):
        self._answer = answer
        self._head = head
        self.choices = choices

    def tail(self) -> bytes:
        """A finish chunk per choice, the usage chunk when asked for, ``[DONE]``."""
        answer = self._answer
        tail = [frames.image for frames in self.choices if frames.image]
        tail += [
            frames.finish(choice.generation.finish_reason)
            for choice, frames in zip(answer.choices, self.choices, strict=True)
        ]
        if answer.request.include_usage:
            tail.append(usage_frame(self._head, answer.usage))
        tail.append(DONE)
        return b"".join(tail)


class OpenAIEndpoint:
    """Body, stream and errors of the OpenAI-shaped endpoints; subclasses give the names and
    the per-choice parts."""

    id_prefix: str
    object_name: str
    chunk_object: str
    max_tool_calls: int | None = None

    def choice_body(self, choice: Choice, answer: Answer[Any]) -> dict[str, object]:
        """One entry of a non-streamed response's ``choices``."""
        raise NotImplementedError

    def choice_frames(self, envelope: bytes, choice: Choice, answer: Answer[Any]) -> ChoiceFrames:
        """The stream frames of one choice."""
        raise NotImplementedError

    def tool_call_frames(self, envelope: bytes, index: int, generation: Generation) -> list[bytes]:
        """One stream frame per chunk of a tool-call answer."""
        raise NotImplementedError

    def body(self, answer: Answer[Any]) -> dict[str, object]:
        """The non-streamed response (+ ``kv_transfer_params`` on a prefill instance)."""
        body: dict[str, object] = {
            "id": f"{self.id_prefix}{answer.state.request_id}",
            "object": self.object_name,
            "created": int(time.time()),
            "model": answer.state.display_model,
            "choices": [self.choice_body(c, answer) for c in answer.choices],
            "usage": answer.usage,
        }
        if answer.request.remote_decode:
            body["kv_transfer_params"] = REMOTE_DECODE_PARAMS
        return body

    def stream(self, answer: Answer[Any]) -> OpenAIStream:
        """The streamed response's frames."""
        head = envelope(
            f"{self.id_prefix}{answer.state.request_id}",
            self.chunk_object,
            int(time.time()),
            answer.state.display_model,
        )
        frames = []
        for choice in answer.choices:
            made = self.choice_frames(head, choice, answer)
            if choice.generation.tool_calls:
                made.prepared = self.tool_call_frames(head, choice.index, choice.generation)
            frames.append(made)
        return OpenAIStream(answer, head, frames)

    def error_body(self, error: LlmsimError) -> bytes:
        """The OpenAI error shape (ERR-1)."""
        return body_for(error)
