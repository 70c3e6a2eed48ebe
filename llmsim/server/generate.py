"""``POST /inference/v1/generate``: vLLM's token-in, token-out endpoint of the prefill/decode
path (API-GEN-1).

The prompt is ``token_ids`` (not tokenized again); ``sampling_params`` carries the output limit.
The answer is token ids: ``{"request_id","choices":[{"index":0,"finish_reason","token_ids"}]}``.
A stream sends one chunk per token with that token's ids, the last one with the finish reason,
then the usage chunk when asked for, then ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import model_validator

from llmsim.engine.generation import FINISH_CACHE_THRESHOLD, Generation, Prompt
from llmsim.engine.tokenizer import Tokenizer
from llmsim.errors import LlmsimError
from llmsim.server.errors import body_for
from llmsim.server.frames import DONE
from llmsim.server.generation import REMOTE_DECODE_PARAMS, Answer
from llmsim.server.protocol import GenerationRequest, KVTransferParams, TokenIds, _Lenient

PATH = "/inference/v1/generate"


class SamplingParams(_Lenient):
    """The sampling parameters llmsim honours."""

    max_tokens: int | None = None
    min_tokens: int | None = None
    ignore_eos: bool | None = None
    seed: int | None = None
    extra_args: dict[str, Any] | None = None


class GenerateRequest(GenerationRequest):
    """``POST /inference/v1/generate``."""

    token_ids: TokenIds | None = None
    sampling_params: SamplingParams | None = None
    features: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _sampling(self) -> GenerateRequest:
        """Token ids and sampling parameters are required; the limit, floor, seed and
        ``ignore_eos`` come from the sampling parameters, ``kv_transfer_params`` from their
        ``extra_args`` when not given at the top level."""
        if not self.token_ids:
            raise ValueError("Missing input token_ids")
        params = self.sampling_params
        if params is None:
            raise ValueError("Missing sampling_params field")
        self.max_tokens = params.max_tokens
        self.min_tokens = params.min_tokens
        if params.ignore_eos is not None:
            self.ignore_eos = params.ignore_eos
        if params.seed is not None:
            self.seed = params.seed
        extra = params.extra_args or {}
        if self.kv_transfer_params is None and isinstance(extra.get("kv_transfer_params"), dict):
            self.kv_transfer_params = KVTransferParams.model_validate(extra["kv_transfer_params"])
        return self

    @property
    def choices(self) -> int:
        """One sequence per request."""
        return 1

    def logprobs_k(self) -> int | None:
        """Logprobs are not simulated here."""
        return None

    @property
    def ids(self) -> list[int]:
        """The prompt's token ids (never empty once validated)."""
        return self.token_ids or []


def _answer_ids(generation: Generation, tokenizer: Tokenizer) -> list[list[int]]:
    """Each answer token's ids: the given ids of an echo, else the token's encoding."""
    if generation.token_ids is not None:
        return [[token_id] for token_id in generation.token_ids]
    return [tokenizer.encode(token) for token in generation.tokens]


class GenerateStream:
    """The chunks of a streamed generate answer."""

    __slots__ = ("_answer", "_finish", "_head", "_ids", "_last", "choices", "first", "prepared")

    def __init__(self, answer: Answer[GenerateRequest], tokenizer: Tokenizer):
        self._answer = answer
        generation = answer.choices[0].generation
        self._ids = _answer_ids(generation, tokenizer)
        self._last = len(self._ids) - 1
        self._head = b'data: {"request_id":' + orjson.dumps(answer.state.request_id)
        self._finish = orjson.dumps(generation.finish_reason)
        self.first = b""
        self.prepared: list[bytes] | None = None
        self.choices = [self]

    def token(self, text: str, position: int, offset: int) -> bytes:
        """The chunk of the token at ``position``; the last one carries the finish reason."""
        finish = self._finish if position == self._last else b"null"
        return b"".join(
            (
                self._head,
                b',"choices":[{"index":0,"finish_reason":',
                finish,
                b',"token_ids":',
                orjson.dumps(self._ids[position]),
                b"}]}\n\n",
            )
        )

    def tail(self) -> bytes:
        """A cache_threshold finish chunk (its answer has no tokens), the usage chunk when
        asked for, ``[DONE]``."""
        answer = self._answer
        tail = []
        if answer.choices[0].generation.finish_reason == FINISH_CACHE_THRESHOLD:
            tail.append(
                self._head
                + b',"choices":[{"index":0,"finish_reason":"cache_threshold","token_ids":[]}]}\n\n'
            )
        if answer.request.include_usage:
            usage = orjson.dumps(answer.usage)
            tail.append(self._head + b',"choices":[],"usage":' + usage + b"}\n\n")
        tail.append(DONE)
        return b"".join(tail)


class GenerateEndpoint:
    """How the token-id generate endpoint differs from other generation endpoints."""

    path = PATH
    request_model = GenerateRequest
    max_tool_calls: int | None = None

    def __init__(self, tokenizer: Tokenizer):
        self._tokenizer = tokenizer

    async def prompts(
        self,
        request: GenerateRequest,
        tokenizer: Tokenizer,
        with_ids: bool,
        media_tokens: Mapping[str, int],
    ) -> list[Prompt]:
        """The given ids; echo answers them back, token by token."""
        ids = tuple(request.ids)
        text = ",".join(map(str, ids))
        return [Prompt(len(ids), text, text, tuple(tokenizer.token_texts(ids)), ids)]

    def rule_prompt(self, request: GenerateRequest) -> str:
        """The ids joined by commas."""
        return ",".join(map(str, request.ids))

    def tools(self, request: GenerateRequest) -> tuple[list[dict[str, Any]], Any]:
        """Generate takes no tools."""
        return [], None

    def body(self, answer: Answer[GenerateRequest]) -> dict[str, object]:
        """The non-streamed answer (+ ``kv_transfer_params`` on a prefill instance)."""
        generation = answer.choices[0].generation
        ids = [i for token in _answer_ids(generation, self._tokenizer) for i in token]
        body: dict[str, object] = {
            "request_id": answer.state.request_id,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": generation.finish_reason,
                    "token_ids": ids,
                    "logprobs": None,
                }
            ],
            "prompt_logprobs": None,
            "ec_transfer_params": None,
        }
        if answer.request.remote_decode:
            body["kv_transfer_params"] = REMOTE_DECODE_PARAMS
        return body

    def stream(self, answer: Answer[GenerateRequest]) -> GenerateStream:
        """The streamed answer's chunks."""
        return GenerateStream(answer, self._tokenizer)

    def error_body(self, error: LlmsimError) -> bytes:
        """The OpenAI error shape (ERR-1)."""
        return body_for(error)
