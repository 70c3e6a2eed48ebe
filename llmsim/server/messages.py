"""``POST /v1/messages``: Anthropic's Messages API on the generation engine (API-MSG-*).

The request becomes a chat conversation (``system`` first, ``tool_use`` blocks as assistant tool
calls, each ``tool_result`` a ``tool`` message, images as image parts) and runs like a chat
request with one choice. The answer is a list of content blocks: one text block, or one
``tool_use`` block per call. A stream sends Anthropic's named events: ``message_start``, then per
block ``content_block_start``, its deltas and ``content_block_stop``, then ``message_delta``
with the stop reason and ``message_stop``; no ``[DONE]``. Errors have Anthropic's shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal

import orjson
from pydantic import Field, field_validator

from llmsim.engine.generation import (
    FINISH_CACHE_THRESHOLD,
    FINISH_LENGTH,
    FINISH_TOOL_CALLS,
    Generation,
    Prompt,
)
from llmsim.engine.tokenizer import Tokenizer
from llmsim.engine.tools import SynthesizedCall
from llmsim.errors import BadRequest, LlmsimError
from llmsim.server.conversation import chat_prompt
from llmsim.server.generation import Answer
from llmsim.server.protocol import (
    ChatMessage,
    ContentPart,
    FunctionCall,
    GenerationRequest,
    ImageURL,
    ToolCall,
    _Lenient,
)

PATH = "/v1/messages"
STOP_REASONS = {
    FINISH_TOOL_CALLS: "tool_use",
    FINISH_LENGTH: "max_tokens",
    FINISH_CACHE_THRESHOLD: "max_tokens",
}
"""Anthropic stop reasons of llmsim finish reasons; any other is ``end_turn``."""
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}
"""Anthropic error types by HTTP status; any other is ``api_error``."""


class ImageSource(_Lenient):
    """An image block's source: base64 data or a URL."""

    type: str = "base64"
    media_type: str | None = None
    data: str | None = None
    url: str | None = None

    def as_url(self) -> str:
        """The image as a URL (base64 data as a ``data:`` URL, API-MSG-1)."""
        if self.type == "url" and self.url is not None:
            return self.url
        return f"data:{self.media_type};base64,{self.data or ''}"


class ContentBlock(_Lenient):
    """One block of a message's content."""

    type: str
    text: str | None = None
    source: ImageSource | None = None
    id: str | None = None
    name: str | None = None
    input: dict[str, Any] | None = None
    tool_use_id: str | None = None
    content: str | list[ContentBlock] | None = None

    def joined_text(self) -> str:
        """A tool result's content as text: the string, or its text blocks joined by ``\\n``."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(b.text for b in self.content or () if b.type == "text" and b.text)


class Message(_Lenient):
    """One turn of the conversation."""

    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class SystemBlock(_Lenient):
    """A text block of a list-valued ``system``."""

    type: str = "text"
    text: str = ""


class Tool(_Lenient):
    """A client tool: name, description and input JSON schema."""

    name: str
    description: str | None = None
    input_schema: dict[str, Any]


class ToolChoice(_Lenient):
    """``tool_choice``: ``auto``, ``any``, ``none``, or ``tool`` with a name."""

    type: Literal["auto", "any", "none", "tool"]
    name: str | None = None


class MessagesRequest(GenerationRequest):
    """``POST /v1/messages``."""

    messages: list[Message] = Field(min_length=1)
    system: str | list[SystemBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    stop_sequences: list[str] | None = None

    @field_validator("messages", mode="before")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if isinstance(value, list) and not value:
            raise ValueError("messages must not be empty")
        return value

    @property
    def choices(self) -> int:
        """Messages answers have one choice."""
        return 1

    def output_limit(self) -> int | None:
        """``max_tokens``: required, and positive (API-MSG-2, ERR-4)."""
        if self.max_tokens is None:
            raise BadRequest("max_tokens is required", param="max_tokens")
        return super().output_limit()

    def logprobs_k(self) -> int | None:
        """The Messages API has no logprobs."""
        return None

    @cached_property
    def chat_messages(self) -> list[ChatMessage]:
        """The conversation as chat messages (API-MSG-1), converted once per request."""
        chat: list[ChatMessage] = []
        system = self.system
        if isinstance(system, list):
            system = "\n".join(block.text for block in system)
        if system:
            chat.append(ChatMessage(role="system", content=system))
        for message in self.messages:
            chat.extend(_chat_turn(message))
        return chat


def _chat_turn(message: Message) -> list[ChatMessage]:
    """One Anthropic turn as chat messages: its text and images, its tool calls, and one
    ``tool`` message per tool result; other blocks are dropped."""
    if isinstance(message.content, str):
        return [ChatMessage(role=message.role, content=message.content)]
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    results: list[ChatMessage] = []
    for block in message.content:
        if block.type == "text" and block.text is not None:
            parts.append(ContentPart(type="text", text=block.text))
        elif block.type == "image":
            if block.source is None:
                raise BadRequest("image block has no source", param="messages")
            url = ImageURL(url=block.source.as_url())
            parts.append(ContentPart(type="image_url", image_url=url))
        elif block.type == "tool_use":
            arguments = json.dumps(block.input or {}, separators=(",", ":"))
            function = FunctionCall(name=block.name or "", arguments=arguments)
            calls.append(ToolCall(id=block.id, function=function))
        elif block.type == "tool_result":
            results.append(
                ChatMessage(
                    role="tool", content=block.joined_text(), tool_call_id=block.tool_use_id
                )
            )
    turn = []
    if parts or calls or not results:
        turn.append(ChatMessage(role=message.role, content=parts, tool_calls=calls or None))
    return results + turn


def _event(name: str, payload: Mapping[str, object]) -> bytes:
    """One named SSE event."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def _tool_use_id(call: SynthesizedCall) -> str:
    return f"toolu_{call.digits}"


def _stop_reason(generation: Generation) -> str:
    return STOP_REASONS.get(generation.finish_reason, "end_turn")


class MessagesStream:
    """The frames of a streamed Messages answer (API-MSG-4)."""

    __slots__ = ("_answer", "_message", "choices", "first", "prepared")

    def __init__(self, answer: Answer[MessagesRequest], message: dict[str, object]):
        self._answer = answer
        self._message = message
        generation = answer.choices[0].generation
        start = _event("message_start", {"type": "message_start", "message": message})
        ping = _event("ping", {"type": "ping"})
        self.prepared: list[bytes] | None = None
        if generation.tool_calls:
            self.first = start + ping
            self.prepared = _tool_frames(generation)
        else:
            block = {"type": "text", "text": ""}
            opening = {"type": "content_block_start", "index": 0, "content_block": block}
            self.first = start + _event("content_block_start", opening) + ping
        self.choices = [self]

    def token(self, text: str, position: int, offset: int) -> bytes:
        """A ``text_delta`` of the text block."""
        return b"".join(
            (
                b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                b'"delta":{"type":"text_delta","text":',
                orjson.dumps(text),
                b"}}\n\n",
            )
        )

    def tail(self) -> bytes:
        """Close the last block, then ``message_delta`` and ``message_stop``."""
        choice = self._answer.choices[0]
        generation = choice.generation
        opened = b""
        if generation.finish_reason == FINISH_CACHE_THRESHOLD:
            opened = self.first
        last = max(len(generation.tool_calls) - 1, 0)
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(generation), "stop_sequence": None},
            "usage": {"output_tokens": generation.count},
        }
        return b"".join(
            (
                opened,
                _event("content_block_stop", {"type": "content_block_stop", "index": last}),
                _event("message_delta", delta),
                _event("message_stop", {"type": "message_stop"}),
            )
        )


def _tool_frames(generation: Generation) -> list[bytes]:
    """One frame per token of a tool-use answer: a call's opening token closes the previous
    block and starts a ``tool_use`` block; each argument token is an ``input_json_delta``."""
    frames = []
    call = -1
    for token in generation.tokens:
        if token == "":
            frame = b""
            if call >= 0:
                frame = _event("content_block_stop", {"type": "content_block_stop", "index": call})
            call += 1
            made = generation.tool_calls[call]
            block = {"type": "tool_use", "id": _tool_use_id(made), "name": made.name, "input": {}}
            opening = {"type": "content_block_start", "index": call, "content_block": block}
            frames.append(frame + _event("content_block_start", opening))
        else:
            delta = {"type": "input_json_delta", "partial_json": token}
            payload = {"type": "content_block_delta", "index": call, "delta": delta}
            frames.append(_event("content_block_delta", payload))
    return frames


class MessagesEndpoint:
    """How Anthropic Messages differ from other generation endpoints."""

    path = PATH
    request_model = MessagesRequest
    max_tool_calls: int | None = None

    async def prompts(
        self,
        request: MessagesRequest,
        tokenizer: Tokenizer,
        with_ids: bool,
        media_tokens: Mapping[str, int],
    ) -> list[Prompt]:
        """One prompt: the conversation through the chat template; echo answers the last
        message."""
        messages = request.chat_messages
        echo = messages[-1].plain_text()
        return [await chat_prompt(messages, tokenizer, with_ids, media_tokens, echo)]

    def rule_prompt(self, request: MessagesRequest) -> str:
        """The last user turn's text."""
        messages = request.chat_messages
        for message in reversed(messages):
            if message.role == "user":
                return message.plain_text()
        return messages[-1].plain_text()

    def tools(self, request: MessagesRequest) -> tuple[list[dict[str, Any]], Any]:
        """The tools in chat shape and ``tool_choice`` in chat form (API-MSG-1)."""
        tools = [
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description or "",
                    "parameters": tool.input_schema,
                },
            }
            for tool in request.tools or ()
        ]
        choice = request.tool_choice
        if choice is None or choice.type == "auto":
            return tools, "auto"
        if choice.type == "any":
            return tools, "required"
        if choice.type == "none":
            return tools, "none"
        if not choice.name:
            raise BadRequest("tool_choice of type tool needs a name", param="tool_choice")
        return tools, {"type": "function", "function": {"name": choice.name}}

    def _message(self, answer: Answer[MessagesRequest], streaming: bool) -> dict[str, object]:
        generation = answer.choices[0].generation
        return {
            "id": f"msg_{answer.state.request_id}",
            "type": "message",
            "role": "assistant",
            "content": [] if streaming else _content(generation),
            "model": answer.state.display_model,
            "stop_reason": None if streaming else _stop_reason(generation),
            "stop_sequence": None,
            "usage": {
                "input_tokens": sum(p.tokens for p in answer.prompts),
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 0 if streaming else generation.count,
            },
        }

    def body(self, answer: Answer[MessagesRequest]) -> dict[str, object]:
        """The non-streamed message (API-MSG-3)."""
        return self._message(answer, streaming=False)

    def stream(self, answer: Answer[MessagesRequest]) -> MessagesStream:
        """The streamed message's events (API-MSG-4)."""
        return MessagesStream(answer, self._message(answer, streaming=True))

    def error_body(self, error: LlmsimError) -> bytes:
        """Anthropic's error shape: ``{"type":"error","error":{"type","message"}}``."""
        kind = ERROR_TYPES.get(error.status, "api_error")
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": error.message}})


def _content(generation: Generation) -> list[dict[str, object]]:
    """The answer's content blocks: one ``tool_use`` per call, else one text block."""
    if not generation.tool_calls:
        return [{"type": "text", "text": "".join(generation.tokens)}]
    return [
        {
            "type": "tool_use",
            "id": _tool_use_id(call),
            "name": call.name,
            "input": json.loads(call.arguments),
        }
        for call in generation.tool_calls
    ]
