"""Request models of the OpenAI-compatible endpoints, and request-level checks.

Fields that llmsim honours are typed, so a wrong type is a 400; unknown fields are ignored, as
OpenAI and vLLM ignore them. Bodies are parsed once, straight from bytes, by pydantic's Rust core.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from llmsim.errors import BadRequest

MAX_CHOICES = 128
"""The most choices (``n``) one request may ask for; bounds the work one request can cause."""


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Lenient):
    """``stream_options``: whether a final usage chunk is sent."""

    include_usage: bool | None = False
    continuous_usage_stats: bool | None = False


class ImageURL(_Lenient):
    """An image reference in a content part."""

    url: str = ""


class ContentPart(_Lenient):
    """One part of a message's content: text, image, audio or video."""

    type: str
    text: str | None = None
    image_url: ImageURL | None = None


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
        if isinstance(self.content, str):
            text = self.content
        elif self.content is None:
            text = ""
        else:
            pieces = []
            for part in self.content:
                if part.type == "text" and part.text is not None:
                    pieces.append(part.text)
                elif part.type == "image_url" and part.image_url is not None:
                    pieces.append(f"image: {part.image_url.url}")
            text = "\n".join(pieces)
        if self.tool_calls:
            text += "".join(f"[{c.function.name}({c.function.arguments})]" for c in self.tool_calls)
        return text


class GenerationRequest(_Lenient):
    """Fields shared by the generation endpoints."""

    model: str
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    n: int | None = None
    ignore_eos: bool | None = False
    seed: int | None = None

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


class ChatCompletionRequest(GenerationRequest):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = None

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


class CompletionRequest(GenerationRequest):
    """``POST /v1/completions``; ``prompt`` is a string or a one-string list for now."""

    prompt: str | list[str]

    def prompt_text(self) -> str:
        """The single prompt's text; list forms beyond one string are not served yet."""
        if isinstance(self.prompt, str):
            text = self.prompt
        elif len(self.prompt) == 1:
            text = self.prompt[0]
        elif not self.prompt:
            raise BadRequest("prompt array must contain at least one prompt", param="prompt")
        else:
            raise BadRequest("only one prompt per request is supported", param="prompt")
        if text == "":
            raise BadRequest("prompt must not contain an empty string", param="prompt")
        return text
