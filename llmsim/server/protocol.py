"""Request models of the OpenAI-compatible endpoints, and request-level checks.

Fields that llmsim honours are typed, so a wrong type is a 400; unknown fields are ignored, as
OpenAI and vLLM ignore them. Bodies are parsed once, straight from bytes, by pydantic's Rust core.
"""

from __future__ import annotations

import random
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmsim.engine.tools import structured_answer
from llmsim.errors import BadRequest
from llmsim.scenario.sections import ToolCallSettings

MAX_CHOICES = 128
"""The most choices (``n``) one request may ask for; bounds the work one request can cause."""

MAX_LOGPROBS = 20
"""The most alternatives per token a request may ask for (vLLM's default ``max_logprobs``)."""

MAX_TOKEN_ID = 2**32 - 1


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Lenient):
    """``stream_options``: whether a final usage chunk is sent."""

    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


class ImageURL(_Lenient):
    """An image reference in a content part."""

    url: str = ""


class InputAudio(_Lenient):
    """Audio data in a content part."""

    data: str = ""
    format: str | None = None


class ContentPart(_Lenient):
    """One part of a message's content: text, image, audio or video."""

    type: str
    text: str | None = None
    image_url: ImageURL | None = None
    input_audio: InputAudio | None = None
    video_url: ImageURL | None = None


class FunctionCall(_Lenient):
    """The function a tool call invokes."""

    name: str = ""
    arguments: str = ""


class ToolCall(_Lenient):
    """A tool call made by the assistant in an earlier turn."""

    id: str | None = None
    type: str = "function"
    function: FunctionCall = FunctionCall()


class ChatMessage(_Lenient):
    """One message of a conversation."""

    role: str
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def plain_text(self) -> str:
        """The message as text (API-CHAT-7): text parts joined by newlines, images as
        ``image: <url>``, assistant tool calls appended as ``[name(arguments)]``."""
        content = self.content
        if isinstance(content, str):
            return content + self.tool_call_text() if self.tool_calls else content
        if content is None:
            text = ""
        else:
            pieces = []
            for part in content:
                if part.type == "text" and part.text is not None:
                    pieces.append(part.text)
                elif part.type == "image_url" and part.image_url is not None:
                    pieces.append(f"image: {part.image_url.url}")
            text = "\n".join(pieces)
        return text + self.tool_call_text()

    def tool_call_text(self) -> str:
        """An assistant message's tool calls as text: ``[name(arguments)]`` each."""
        if not self.tool_calls:
            return ""
        return "".join(f"[{c.function.name}({c.function.arguments})]" for c in self.tool_calls)


class KVTransferParams(_Lenient):
    """``kv_transfer_params`` of prefill/decode disaggregation (API-PD-1, API-PD-2)."""

    do_remote_prefill: bool | None = False
    do_remote_decode: bool | None = False


class GenerationRequest(_Lenient):
    """Fields shared by the generation endpoints."""

    model: str
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    min_tokens: int | None = None
    n: int | None = None
    ignore_eos: bool | None = False
    seed: int | None = None
    kv_transfer_params: KVTransferParams | None = None
    cache_hit_threshold: float | None = None

    def hit_threshold(self, global_threshold: float) -> float | None:
        """The prefix-cache hit rate below which the answer is cache_threshold (KV-6): the
        request's own, else the scenario's when above 0; None for no threshold."""
        threshold = self.cache_hit_threshold
        if threshold is None:
            return global_threshold if global_threshold > 0 else None
        if not 0.0 <= threshold <= 1.0:
            raise BadRequest(
                "cache_hit_threshold must be between 0 and 1", param="cache_hit_threshold"
            )
        return threshold

    @property
    def remote_prefill(self) -> bool:
        """Whether the prompt's KV cache comes from a prefill instance (a decode request)."""
        return bool(self.kv_transfer_params and self.kv_transfer_params.do_remote_prefill)

    @property
    def remote_decode(self) -> bool:
        """Whether another instance decodes after this one prefills (a prefill request)."""
        return bool(self.kv_transfer_params and self.kv_transfer_params.do_remote_decode)

    def min_output(self, limit: int | None) -> int:
        """``min_tokens``, checked as vLLM checks it: not negative, not above the limit."""
        if self.min_tokens is None:
            return 0
        if self.min_tokens < 0:
            raise BadRequest("min_tokens must be greater than or equal to 0", param="min_tokens")
        if limit is not None and self.min_tokens > limit:
            raise BadRequest(
                "min_tokens must be less than or equal to max_tokens", param="min_tokens"
            )
        return self.min_tokens

    def logprobs_k(self) -> int | None:
        """How many alternatives per token to report; None when logprobs are not asked for."""
        raise NotImplementedError

    @property
    def thinking(self) -> bool:
        """Whether the answer may start with reasoning (chat only)."""
        return False

    def structured_text(self, rng: random.Random, settings: ToolCallSettings) -> str | None:
        """The answer's text when the request asks for structured output (JSON), else None."""
        return None

    @property
    def makes_images(self) -> bool:
        """Whether an omni answer may carry an image (chat only)."""
        return False

    @property
    def include_usage(self) -> bool:
        """Whether a streamed response ends with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def choices(self) -> int:
        """The number of choices asked for (``n``), checked as upstream checks it (ERR-4)."""
        if self.n is None:
            return 1
        if self.n <= 0:
            raise BadRequest("n must be at least 1", param="n")
        if self.n > MAX_CHOICES:
            raise BadRequest(f"n must be at most {MAX_CHOICES}", param="n")
        return self.n

    def output_limit(self) -> int | None:
        """The requested output limit, checked positive (ERR-4); None when absent."""
        limit = self.max_tokens
        if limit is not None and limit <= 0:
            raise BadRequest(
                "Max completion tokens and max tokens should be positive", param="max_tokens"
            )
        return limit


class NamedFunction(_Lenient):
    """The function a named ``tool_choice`` names."""

    name: str


class NamedToolChoice(_Lenient):
    """``tool_choice: {"type": "function", "function": {"name": ...}}``."""

    type: Literal["function"] = "function"
    function: NamedFunction


class JsonSchemaFormat(_Lenient):
    """``response_format.json_schema``: a named schema."""

    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")


class ResponseFormat(_Lenient):
    """``response_format``: text, ``json_object`` or ``json_schema``."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class ChatCompletionRequest(GenerationRequest):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None
    logprobs: bool | None = False
    top_logprobs: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    chat_template_kwargs: dict[str, Any] | None = None
    response_format: ResponseFormat | None = None

    def structured_text(self, rng: random.Random, settings: ToolCallSettings) -> str | None:
        """JSON for ``response_format`` ``json_schema`` (valid against its schema) or
        ``json_object``; None for text."""
        fmt = self.response_format
        if fmt is None:
            return None
        schema = fmt.json_schema.schema_ if fmt.json_schema is not None else None
        if fmt.type == "json_schema" and schema is None:
            raise BadRequest(
                "response_format.json_schema.schema is required", param="response_format"
            )
        return structured_answer(rng, fmt.type, schema, settings)

    @property
    def thinking(self) -> bool:
        """Reasoning is on unless ``chat_template_kwargs`` turns it off, as Qwen3's
        ``enable_thinking: false`` (or ``thinking: false``) does."""
        kwargs = self.chat_template_kwargs or {}
        return kwargs.get("enable_thinking") is not False and kwargs.get("thinking") is not False

    @property
    def makes_images(self) -> bool:
        """Chat answers may carry an image in omni mode."""
        return True

    def tool_choice_value(self) -> str | dict[str, Any] | None:
        """``tool_choice`` as plain data (a string, or the named function's object)."""
        if isinstance(self.tool_choice, NamedToolChoice):
            return self.tool_choice.model_dump()
        return self.tool_choice

    def logprobs_k(self) -> int | None:
        """``top_logprobs`` alternatives (0 by default) when ``logprobs`` is true (LP-2)."""
        k = self.top_logprobs or 0
        if not 0 <= k <= MAX_LOGPROBS:
            raise BadRequest(
                f"top_logprobs must be between 0 and {MAX_LOGPROBS}", param="top_logprobs"
            )
        if not self.logprobs:
            if k:
                raise BadRequest(
                    "when using top_logprobs, logprobs must be set to true", param="top_logprobs"
                )
            return None
        return k

    @field_validator("messages", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("messages must not be empty")
        return value

    def output_limit(self) -> int | None:
        """``max_completion_tokens`` overrides ``max_tokens``; either must be positive."""
        if self.max_completion_tokens is not None:
            if self.max_completion_tokens <= 0:
                raise BadRequest(
                    "Max completion tokens and max tokens should be positive",
                    param="max_completion_tokens",
                )
            return self.max_completion_tokens
        return super().output_limit()


TokenIds = list[Annotated[int, Field(ge=0, le=MAX_TOKEN_ID)]]


class CompletionRequest(GenerationRequest):
    """``POST /v1/completions``: ``prompt`` is a string, strings, token ids, or lists of ids."""

    prompt: str | list[str] | TokenIds | list[TokenIds] | None = None
    logprobs: int | None = None
    echo: bool | None = False

    def logprobs_k(self) -> int | None:
        """The ``logprobs`` alternatives per token (LP-3); None when absent."""
        if self.logprobs is None:
            return None
        if not 0 <= self.logprobs <= MAX_LOGPROBS:
            raise BadRequest(f"logprobs must be between 0 and {MAX_LOGPROBS}", param="logprobs")
        return self.logprobs

    def prompt_list(self) -> list[str] | list[list[int]]:
        """The prompts, one per sub-request, checked as upstream checks them (API-CMPL-1)."""
        if self.echo:
            raise BadRequest("echo is not supported", param="echo")
        prompt = self.prompt
        if prompt is None or (isinstance(prompt, list) and not prompt):
            raise BadRequest("prompt array must contain at least one prompt", param="prompt")
        if isinstance(prompt, str):
            prompts: list[str] | list[list[int]] = [prompt]
        elif isinstance(prompt[0], int):
            prompts = [prompt]
        else:
            prompts = prompt
        for item in prompts:
            if item == "":
                raise BadRequest("prompt must not contain an empty string", param="prompt")
            if item == []:
                raise BadRequest("prompt must not contain an empty token-id array", param="prompt")
        return prompts
