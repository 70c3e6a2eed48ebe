"""``/tokenize``, ``/detokenize`` and the render endpoints (API-TOK-1, API-RENDER-1).

They use the served model's tokenizer and chat template, as vLLM's do; nothing here is queued,
metered or subject to failure injection.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmsim.engine.engine import Engine
from llmsim.errors import BadRequest
from llmsim.server.completions import CompletionsEndpoint
from llmsim.server.conversation import chat_prompt
from llmsim.server.errors import from_validation_error
from llmsim.server.protocol import ChatCompletionRequest, ChatMessage, CompletionRequest


class TokenizeRequest(BaseModel):
    """vLLM's tokenize request: a prompt, or chat messages."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool | None = None
    return_token_strs: bool | None = False


class DetokenizeRequest(BaseModel):
    """vLLM's detokenize request."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    tokens: list[int] = Field(min_length=0)


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def tokenize_router(engine: Engine) -> APIRouter:
    """The routes, serving from ``engine``'s tokenizer and plan."""
    router = APIRouter()

    def check_model(name: str | None, *, allow_adapter: bool = True) -> None:
        if name is None:
            return
        adapter = engine.resolve_model(name)
        if adapter is not None and not allow_adapter:
            raise BadRequest(
                f"The model `{name}` is a LoRA adapter and is not supported by the render "
                "endpoints."
            )

    async def _chat_ids(messages: list[ChatMessage], special: bool = False) -> list[int]:
        """The token ids of a conversation, as the chat endpoint counts them."""
        plan = engine.plan
        prompt = await chat_prompt(
            messages, engine.tokenizer, True, plan.model.media_tokens, "", special
        )
        return list(prompt.token_ids or ())

    @router.post("/tokenize")
    async def tokenize(request: Request) -> JSONResponse:
        """Token ids of a prompt or of a conversation through the chat template."""
        body: TokenizeRequest = _parse(TokenizeRequest, await request.body())
        check_model(body.model)
        tokenizer = engine.tokenizer
        if body.prompt is not None and body.messages is not None:
            raise BadRequest("both prompt and messages fields in tokenize request")
        if body.messages is not None:
            ids = await _chat_ids(body.messages, bool(body.add_special_tokens))
        elif body.prompt is not None:
            special = body.add_special_tokens is not False
            ids = await tokenizer.encode_async(body.prompt, add_special_tokens=special)
        else:
            raise BadRequest("either prompt or messages is required")
        return JSONResponse(
            {
                "count": len(ids),
                "max_model_len": engine.plan.model.max_model_len,
                "tokens": ids,
                "token_strs": tokenizer.token_texts(ids) if body.return_token_strs else None,
            }
        )

    @router.post("/detokenize")
    async def detokenize(request: Request) -> JSONResponse:
        """The text of token ids."""
        body: DetokenizeRequest = _parse(DetokenizeRequest, await request.body())
        check_model(body.model)
        return JSONResponse({"prompt": engine.tokenizer.decode(body.tokens)})

    @router.post("/v1/completions/render")
    async def render_completions(request: Request) -> JSONResponse:
        """The token ids of each prompt, as the completions endpoint would see them."""
        body: CompletionRequest = _parse(CompletionRequest, await request.body())
        check_model(body.model, allow_adapter=False)
        prompts = await CompletionsEndpoint().prompts(body, engine.tokenizer, with_ids=True)
        return JSONResponse([{"token_ids": list(p.token_ids or ())} for p in prompts])

    @router.post("/v1/chat/completions/render")
    async def render_chat(request: Request) -> JSONResponse:
        """The token ids of the conversation through the chat template."""
        body: ChatCompletionRequest = _parse(ChatCompletionRequest, await request.body())
        check_model(body.model, allow_adapter=False)
        return JSONResponse({"token_ids": await _chat_ids(body.messages)})

    return router
