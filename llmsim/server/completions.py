"""``POST /v1/completions``: prompt, response body and stream frames (API-CMPL-*).

Stream shape: one chunk per token with its ``text``, no role chunk; a finish chunk with empty
text; the usage chunk if asked; ``[DONE]``.
"""

from __future__ import annotations

import orjson

from llmsim.engine.generation import Generation, Prompt
from llmsim.engine.tokenizer import SimulatedTokenizer
from llmsim.server.frames import ChunkTemplate, StreamFrames, envelope, usage_object
from llmsim.server.protocol import CompletionRequest

PATH = "/v1/completions"


class CompletionsEndpoint:
    """How text completions differ from other generation endpoints."""

    path = PATH
    request_model = CompletionRequest

    def prompt(self, request: CompletionRequest, tokenizer: SimulatedTokenizer) -> Prompt:
        """Prompt tokens of the prompt text; echo answers the prompt."""
        text = request.prompt_text()
        return Prompt(tokenizer.count(text), text)

    def body(
        self, request_id: str, created: int, model: str, generation: Generation, prompt: Prompt
    ) -> bytes:
        """The non-streamed response body (API-CMPL-2)."""
        return orjson.dumps(
            {
                "id": f"cmpl-{request_id}",
                "object": "text_completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "text": "".join(generation.tokens),
                        "logprobs": None,
                        "finish_reason": generation.finish_reason,
                    }
                ],
                "usage": usage_object(prompt.tokens, len(generation.tokens)),
            }
        )

    def frames(self, request_id: str, created: int, model: str) -> StreamFrames:
        """The stream frames of one response."""
        head = envelope(f"cmpl-{request_id}", "text_completion", created, model)
        choice = head + b',"choices":[{"index":0,"text":'
        return StreamFrames(
            head,
            token=ChunkTemplate(choice, b',"logprobs":null,"finish_reason":null}],"usage":null}'),
            finish=ChunkTemplate(
                choice + b'"","logprobs":null,"finish_reason":', b'}],"usage":null}'
            ),
            first=b"",
        )
