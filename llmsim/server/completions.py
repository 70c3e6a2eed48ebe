"""``POST /v1/completions``: prompts, choice bodies and stream frames (API-CMPL-*).

Each prompt of the request is a sub-request with ``n`` choices, choice index ``p x n + j``. A
token-id prompt counts its ids as its tokens and echoes as the ids joined by commas. Stream shape:
one chunk per token with its ``text`` (no role chunk); after every choice ends a finish chunk per
choice with empty text, the usage chunk if asked, ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmsim.engine.engine import Choice
from llmsim.engine.generation import Generation, Prompt
from llmsim.engine.logprobs import completion_logprobs
from llmsim.engine.tokenizer import Tokenizer
from llmsim.server.frames import ChoiceFrames, LogprobsBuilder
from llmsim.server.generation import Answer
from llmsim.server.openai_shape import OpenAIEndpoint
from llmsim.server.protocol import CompletionRequest

PATH = "/v1/completions"


def token_id_prompt(ids: list[int]) -> Prompt:
    """A prompt given as token ids: no tokenization; echo is the ids joined by commas."""
    echo = tuple([str(ids[0])] + [f",{i}" for i in ids[1:]])
    text = "".join(echo)
    return Prompt(len(ids), text, text, echo, tuple(ids))


class CompletionsEndpoint(OpenAIEndpoint):
    """How text completions differ from other generation endpoints."""

    path = PATH
    request_model = CompletionRequest
    id_prefix = "cmpl-"
    object_name = "text_completion"
    chunk_object = "text_completion"

    async def prompts(
        self,
        request: CompletionRequest,
        tokenizer: Tokenizer,
        with_ids: bool,
        media_tokens: Mapping[str, int] | None = None,
    ) -> list[Prompt]:
        """One prompt per entry of ``prompt`` (text is encoded with special tokens, as vLLM
        encodes completion prompts). Token ids only ``with_ids`` (the count is cheaper)."""
        prompts = []
        for item in request.prompt_list():
            if isinstance(item, str) and not with_ids:
                count = await tokenizer.count_async(item, add_special_tokens=True)
                prompts.append(Prompt(count, item, item))
            elif isinstance(item, str):
                ids = await tokenizer.encode_async(item, add_special_tokens=True)
                prompts.append(Prompt(len(ids), item, item, token_ids=tuple(ids)))
            else:
                prompts.append(token_id_prompt(item))
        return prompts

    def rule_prompt(self, request: CompletionRequest) -> str:
        """The first prompt's text (token ids joined by commas)."""
        first = request.prompt_list()[0]
        return first if isinstance(first, str) else ",".join(map(str, first))

    def tools(self, request: CompletionRequest) -> tuple[list[dict[str, Any]], Any]:
        """Completions take no tools."""
        return [], None

    def tool_call_frames(self, envelope: bytes, index: int, generation: Generation) -> list[bytes]:
        """Completions never answer with tool calls."""
        raise NotImplementedError

    def choice_body(self, choice: Choice, answer: Answer[Any]) -> dict[str, object]:
        """One entry of a non-streamed response's ``choices`` (API-CMPL-2)."""
        generation, top = choice.generation, answer.top
        tokens = generation.tokens
        return {
            "index": choice.index,
            "text": "".join(tokens),
            "logprobs": completion_logprobs(tokens, top) if top is not None else None,
            "finish_reason": generation.finish_reason,
        }

    def choice_frames(self, envelope: bytes, choice: Choice, answer: Answer[Any]) -> ChoiceFrames:
        """The stream frames of one choice."""
        top = answer.top
        head = envelope + b',"choices":[{"index":%d,"text":' % choice.index
        logprobs: LogprobsBuilder | None = None
        if top is not None:

            def logprobs(text: str, position: int, offset: int) -> object:
                return completion_logprobs([text], top, position, offset)

        return ChoiceFrames(
            head=head,
            middle=b',"logprobs":',
            tail=b',"finish_reason":null}],"usage":null}',
            finish_head=head + b'"","logprobs":null,"finish_reason":',
            finish_tail=b'}],"usage":null}',
            first=b"",
            logprobs=logprobs,
        )
