"""``POST /v1/responses``: OpenAI's Responses API on the generation engine (API-RESP-*).

The input becomes a chat conversation (``instructions`` first as a system message, as vLLM
renders it; each ``function_call`` an assistant tool call, each ``function_call_output`` a
``tool`` message; ``reasoning`` items dropped) and runs like a chat request with one choice. The
answer is one output item: a ``message`` with one ``output_text`` part, or one ``function_call``.
A ``json_schema`` (or ``json_object``) ``text.format`` makes the text a JSON document valid
against the schema. A stream sends named events, each with a ``sequence_number``: the response's
``created`` and ``in_progress``, the item's opening, one delta per token, the closing events and
``response.completed`` (``response.incomplete`` when the output limit cut the answer); no
``[DONE]``. It never stores responses: ``previous_response_id`` is not followed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import PrivateAttr

from llmsim.engine.generation import FINISH_CACHE_THRESHOLD, FINISH_LENGTH, Generation, Prompt
from llmsim.engine.logprobs import chat_entry
from llmsim.engine.tokenizer import Tokenizer
from llmsim.engine.tools import SynthesizedCall, structured_answer
from llmsim.errors import BadRequest, LlmsimError
from llmsim.scenario.sections import ToolCallSettings
from llmsim.server.conversation import chat_prompt
from llmsim.server.errors import body_for
from llmsim.server.generation import REMOTE_DECODE_PARAMS, Answer
from llmsim.server.json_bytes import json_bytes
from llmsim.server.protocol import (
    MAX_LOGPROBS,
    ChatMessage,
    ContentPart,
    FunctionCall,
    GenerationRequest,
    ImageURL,
    InputAudio,
    ToolCall,
    _Lenient,
)

PATH = "/v1/responses"
LOGPROBS_INCLUDE = "message.output_text.logprobs"
"""The ``include`` value that asks for the output text's logprobs (API-RESP-6)."""
INPUT_REQUIRED = "input is required"
TEXT_PARTS = frozenset({"input_text", "output_text"})
FORMAT_TYPES = ("text", "json_schema", "json_object")
AUTO_CHOICES = frozenset({"allowed_tools", "custom"})
"""``tool_choice`` object types that act like ``auto``."""
OPENING_EVENTS = 4
"""Events before a text answer's first delta: created, in_progress, item and part added."""
CALL_OPENING_EVENTS = 2
"""Events before a call's ``output_item.added`` (its first token): created, in_progress."""


class InputPart(_Lenient):
    """One part of an input message's content."""

    type: str
    text: str | None = None
    image_url: str | None = None
    file_id: str | None = None
    input_audio: InputAudio | None = None
    data: str | None = None
    format: str | None = None


class InputItem(_Lenient):
    """One item of ``input``: a message, a function call, its output, or reasoning."""

    type: str | None = None
    role: str | None = None
    content: str | list[InputPart] | None = None
    id: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | list[InputPart] | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    """The input as chat messages, what echo mode answers, and whether a tool answered."""

    messages: list[ChatMessage]
    echo: str
    answered_call: bool


class ResponsesRequest(GenerationRequest):
    """``POST /v1/responses``."""

    input: str | list[InputItem] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    include: list[str] | None = None
    top_logprobs: int | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    temperature: float | None = None
    top_p: float | None = None
    metadata: dict[str, Any] | None = None
    _conversation: Conversation | None = PrivateAttr(default=None)

    @property
    def choices(self) -> int:
        """A response has one output: there is no ``n``."""
        return 1

    def output_limit(self) -> int | None:
        """``max_output_tokens``, positive when given (ERR-4)."""
        limit = self.max_output_tokens
        if limit is not None and limit <= 0:
            raise BadRequest(
                "Max completion tokens and max tokens should be positive",
                param="max_output_tokens",
            )
        return limit

    def min_output(self, limit: int | None) -> int:
        """The Responses API has no ``min_tokens``."""
        return 0

    def logprobs_k(self) -> int | None:
        """``top_logprobs`` alternatives (0 by default) when ``include`` asks for the output
        text's logprobs (API-RESP-6)."""
        k = self.top_logprobs or 0
        if not 0 <= k <= MAX_LOGPROBS:
            raise BadRequest(
                f"top_logprobs must be between 0 and {MAX_LOGPROBS}", param="top_logprobs"
            )
        return k if self.include and LOGPROBS_INCLUDE in self.include else None

    def structured_text(self, rng: random.Random, settings: ToolCallSettings) -> str | None:
        """A JSON answer for a ``json_schema`` or ``json_object`` text format; else None."""
        fmt = self.text_format()
        return structured_answer(rng, fmt["type"], fmt.get("schema"), settings)

    def text_format(self) -> dict[str, Any]:
        """``text.format``, checked (``{"type": "text"}`` when absent)."""
        fmt = (self.text or {}).get("format")
        if fmt is None:
            return {"type": "text"}
        if not isinstance(fmt, dict) or fmt.get("type") not in FORMAT_TYPES:
            raise BadRequest(
                f"text.format.type must be one of {', '.join(FORMAT_TYPES)}", param="text"
            )
        if fmt["type"] == "json_schema" and not isinstance(fmt.get("schema"), dict):
            raise BadRequest("text.format.schema is required for json_schema", param="text")
        return fmt

    def conversation(self) -> Conversation:
        """The input as a chat conversation (API-RESP-1, API-RESP-2), checked once."""
        if self._conversation is None:
            self.text_format()
            self._conversation = _conversation(self.input, self.instructions)
        return self._conversation


def _conversation(given: str | list[InputItem] | None, instructions: str | None) -> Conversation:
    if given is None or given == []:
        raise BadRequest(INPUT_REQUIRED, param="input")
    messages: list[ChatMessage] = []
    if instructions:
        messages.append(ChatMessage(role="system", content=instructions))
    if isinstance(given, str):
        messages.append(ChatMessage(role="user", content=given))
        return Conversation(messages, given, False)
    echo = ""
    answered = False
    for item in given:
        kind = item.type or ("message" if item.role is not None else None)
        if kind == "message":
            if item.role is None:
                raise BadRequest("a message input item needs a role", param="input")
            content = item.content
            parts = content if isinstance(content, str) else [_part(p) for p in content or ()]
            message = ChatMessage(role=item.role, content=parts)
            echo = message.plain_text()
        elif kind == "function_call":
            name, arguments = item.name or "", item.arguments or ""
            call = ToolCall(id=item.call_id, function=FunctionCall(name=name, arguments=arguments))
            message = ChatMessage(role="assistant", content="", tool_calls=[call])
            echo = f"{name}({arguments})"
        elif kind == "function_call_output":
            output = item.output
            parts = output if isinstance(output, str) else [_part(p) for p in output or ()]
            message = ChatMessage(role="tool", content=parts, tool_call_id=item.call_id)
            echo = message.plain_text()
            answered = True
        elif kind == "reasoning":
            continue
        elif kind is None:
            raise BadRequest("an input item needs a type", param="input")
        else:
            raise BadRequest(f"unsupported input item type '{kind}'", param="input")
        messages.append(message)
    return Conversation(messages, echo, answered)


def _part(part: InputPart) -> ContentPart:
    """An input content part as a chat content part."""
    if part.type in TEXT_PARTS:
        return ContentPart(type="text", text=part.text or "")
    if part.type == "input_image":
        url = part.image_url or part.file_id
        if url is None:
            raise BadRequest("an input_image part needs an image_url", param="input")
        return ContentPart(type="image_url", image_url=ImageURL(url=url))
    if part.type == "input_audio":
        audio = part.input_audio or InputAudio(data=part.data or "", format=part.format)
        return ContentPart(type="input_audio", input_audio=audio)
    raise BadRequest(f"unsupported content part type '{part.type}'", param="input")


def _chat_tool(index: int, tool: Mapping[str, Any]) -> dict[str, Any]:
    """A tool in chat shape: a flat function tool is wrapped; other tool types are a 400."""
    if tool.get("type") != "function":
        raise BadRequest(
            f"tools[{index}]: unsupported tool type '{tool.get('type')}'; only function tools "
            "are supported",
            param="tools",
        )
    if "function" in tool:
        return dict(tool)
    keys = ("name", "description", "parameters")
    return {"type": "function", "function": {key: tool[key] for key in keys if key in tool}}


def _chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any]:
    """``tool_choice`` in chat form; omitted and ``auto`` force a call (API-RESP-5)."""
    if choice is None or choice in ("auto", "required"):
        return "required"
    if choice == "none":
        return "none"
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind in AUTO_CHOICES:
            return "required"
        if kind == "function":
            name = choice.get("name") or (choice.get("function") or {}).get("name")
            if not isinstance(name, str) or not name:
                raise BadRequest("tool_choice of type function needs a name", param="tool_choice")
            return {"type": "function", "function": {"name": name}}
        raise BadRequest(f"unsupported tool_choice type '{kind}'", param="tool_choice")
    raise BadRequest(f"unsupported tool_choice '{choice}'", param="tool_choice")


def _event(payload: Mapping[str, object]) -> bytes:
    """One named SSE event; the payload's ``type`` names it."""
    name = str(payload["type"]).encode()
    return b"event: " + name + b"\ndata: " + json_bytes(payload) + b"\n\n"


def _status(generation: Generation) -> str:
    """``incomplete`` when the output limit (or the cache threshold) cut the answer."""
    if generation.finish_reason in (FINISH_LENGTH, FINISH_CACHE_THRESHOLD):
        return "incomplete"
    return "completed"


def _call_item(call: SynthesizedCall, status: str, arguments: str) -> dict[str, object]:
    return {
        "type": "function_call",
        "id": f"fc_{call.digits}",
        "call_id": f"call_{call.digits}",
        "name": call.name,
        "arguments": arguments,
        "status": status,
    }


def _text_part(text: str, logprobs: list[dict[str, object]]) -> dict[str, object]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}


def _message_item(item_id: str, status: str, content: list[dict[str, object]]) -> dict[str, object]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def _logprobs(generation: Generation, top: int | None) -> list[dict[str, object]]:
    if top is None:
        return []
    return [chat_entry(token, p, top) for p, token in enumerate(generation.tokens)]


def _output(answer: Answer[ResponsesRequest]) -> list[dict[str, object]]:
    """The answer's one output item (API-RESP-3, API-RESP-5)."""
    generation = answer.choices[0].generation
    if generation.tool_calls:
        call = generation.tool_calls[0]
        return [_call_item(call, "completed", call.arguments)]
    part = _text_part("".join(generation.tokens), _logprobs(generation, answer.top))
    item_id = f"msg_{answer.state.request_id}"
    return [_message_item(item_id, _status(generation), [part])]


def _usage(answer: Answer[ResponsesRequest]) -> dict[str, object]:
    choice = answer.choices[0]
    input_tokens = sum(p.tokens for p in answer.prompts)
    output_tokens = choice.generation.count
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": choice.cached_tokens},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def _response(
    answer: Answer[ResponsesRequest],
    created_at: int,
    status: str,
    output: list[dict[str, object]],
    usage: dict[str, object] | None,
) -> dict[str, object]:
    """The response object, as the body and the lifecycle events carry it."""
    request = answer.request
    body: dict[str, object] = {
        "id": f"resp_{answer.state.request_id}",
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": answer.state.display_model,
        "output": output,
        "parallel_tool_calls": True,
        "metadata": request.metadata or {},
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "tool_choice": "auto" if request.tool_choice is None else request.tool_choice,
        "tools": request.tools or [],
        "text": {**(request.text or {}), "format": request.text_format()},
        "usage": usage,
    }
    if request.remote_decode:
        body["kv_transfer_params"] = REMOTE_DECODE_PARAMS
    return body


class ResponsesStream:
    """The events of a streamed response (API-RESP-4, API-RESP-5, API-RESP-6); one class is
    both the answer's stream and its one choice's frames."""

    __slots__ = (
        "_answer", "_created_at", "_delta_head", "_delta_middle", "_delta_tail", "_item_id",
        "_top", "choices", "first", "prepared",
    )  # fmt: skip

    def __init__(self, answer: Answer[ResponsesRequest]):
        self._answer = answer
        self._created_at = int(time.time())
        self._item_id = f"msg_{answer.state.request_id}"
        self._top = answer.top
        generation = answer.choices[0].generation
        self.prepared: list[bytes] | None = None
        if generation.tool_calls:
            self.first = self._lifecycle()
            self.prepared = self._call_frames(generation)
        else:
            self.first = self._text_opening()
        kind = b"response.output_text.delta"
        self._delta_head = b"event: " + kind + b'\ndata: {"type":"' + kind + b'","sequence_number":'
        self._delta_middle = (
            b',"item_id":' + orjson.dumps(self._item_id) + b',"output_index":0,"content_index":0,'
            b'"delta":'
        )
        self._delta_tail = b',"logprobs":[]}\n\n' if self._top is None else b"]}\n\n"
        self.choices = [self]

    def _lifecycle(self) -> bytes:
        """``response.created`` and ``response.in_progress`` (sequence numbers 0 and 1)."""
        response = _response(self._answer, self._created_at, "in_progress", [], None)
        return _event(
            {"type": "response.created", "sequence_number": 0, "response": response}
        ) + _event({"type": "response.in_progress", "sequence_number": 1, "response": response})

    def _text_opening(self) -> bytes:
        """The lifecycle events, then the message item and its text part opened."""
        item = _message_item(self._item_id, "in_progress", [])
        return b"".join(
            (
                self._lifecycle(),
                _event(
                    {
                        "type": "response.output_item.added",
                        "sequence_number": 2,
                        "output_index": 0,
                        "item": item,
                    }
                ),
                _event(
                    {
                        "type": "response.content_part.added",
                        "sequence_number": 3,
                        "item_id": self._item_id,
                        "output_index": 0,
                        "content_index": 0,
                        "part": _text_part("", []),
                    }
                ),
            )
        )

    def _call_frames(self, generation: Generation) -> list[bytes]:
        """One frame per token of a call answer: its opening token adds the item, each
        argument token is an arguments delta."""
        call = generation.tool_calls[0]
        item_id = f"fc_{call.digits}"
        frames = []
        for position, token in enumerate(generation.tokens):
            sequence = CALL_OPENING_EVENTS + position
            if token == "":
                payload: dict[str, object] = {
                    "type": "response.output_item.added",
                    "sequence_number": sequence,
                    "output_index": 0,
                    "item": _call_item(call, "in_progress", ""),
                }
            else:
                payload = {
                    "type": "response.function_call_arguments.delta",
                    "sequence_number": sequence,
                    "item_id": item_id,
                    "output_index": 0,
                    "delta": token,
                }
            frames.append(_event(payload))
        return frames

    def token(self, text: str, position: int, offset: int) -> bytes:
        """An ``output_text.delta`` event (its logprobs entry at ``position`` when asked)."""
        sequence = b"%d" % (OPENING_EVENTS + position)
        delta = (self._delta_head, sequence, self._delta_middle, orjson.dumps(text))
        if self._top is None:
            return b"".join((*delta, self._delta_tail))
        entry = orjson.dumps(chat_entry(text, position, self._top))
        return b"".join((*delta, b',"logprobs":[', entry, self._delta_tail))

    def tail(self) -> bytes:
        """The closing events and ``response.completed`` (or ``response.incomplete``); a
        cache_threshold answer wrote nothing, so its opening comes first."""
        answer = self._answer
        generation = answer.choices[0].generation
        opened = b""
        if generation.finish_reason == FINISH_CACHE_THRESHOLD:
            opened = self._text_opening()
        output = _output(answer)
        item = output[0]
        status = _status(generation)
        events: list[dict[str, object]] = []
        if generation.tool_calls:
            sequence = CALL_OPENING_EVENTS + len(generation.tokens)
            events.append(
                {
                    "type": "response.function_call_arguments.done",
                    "item_id": item["id"],
                    "output_index": 0,
                    "name": item["name"],
                    "arguments": item["arguments"],
                }
            )
        else:
            sequence = OPENING_EVENTS + len(generation.tokens)
            content = item["content"]
            assert isinstance(content, list)
            part = content[0]
            common = {"item_id": self._item_id, "output_index": 0, "content_index": 0}
            events.append(
                {
                    "type": "response.output_text.done",
                    **common,
                    "text": part["text"],
                    "logprobs": part["logprobs"],
                }
            )
            events.append({"type": "response.content_part.done", **common, "part": part})
        events.append({"type": "response.output_item.done", "output_index": 0, "item": item})
        response = _response(answer, self._created_at, status, output, _usage(answer))
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        events.append({"type": kind, "response": response})
        frames = [opened]
        for number, payload in enumerate(events, start=sequence):
            frames.append(_event({"type": payload["type"], "sequence_number": number, **payload}))
        return b"".join(frames)


class ResponsesEndpoint:
    """How the Responses API differs from other generation endpoints."""

    path = PATH
    request_model = ResponsesRequest
    max_tool_calls: int | None = 1

    async def prompts(
        self,
        request: ResponsesRequest,
        tokenizer: Tokenizer,
        with_ids: bool,
        media_tokens: Mapping[str, int],
    ) -> list[Prompt]:
        """One prompt: the conversation through the chat template; echo answers the last
        input item (API-RESP-7)."""
        talk = request.conversation()
        return [await chat_prompt(talk.messages, tokenizer, with_ids, media_tokens, talk.echo)]

    def rule_prompt(self, request: ResponsesRequest) -> str:
        """The last user message's text (the last message's when no user spoke)."""
        messages = request.conversation().messages
        for message in reversed(messages):
            if message.role == "user":
                return message.plain_text()
        return messages[-1].plain_text() if messages else ""

    def tools(self, request: ResponsesRequest) -> tuple[list[dict[str, Any]], Any]:
        """The tools in chat shape and ``tool_choice`` in chat form; no call once a
        ``function_call_output`` is in the input (API-RESP-5)."""
        tools = [_chat_tool(index, tool) for index, tool in enumerate(request.tools or ())]
        if not tools:
            return [], None
        choice = _chat_tool_choice(request.tool_choice)
        if request.conversation().answered_call:
            choice = "none"
        return tools, choice

    def body(self, answer: Answer[ResponsesRequest]) -> dict[str, object]:
        """The non-streamed response (API-RESP-3)."""
        generation = answer.choices[0].generation
        output = _output(answer)
        created_at = int(time.time())
        return _response(answer, created_at, _status(generation), output, _usage(answer))

    def stream(self, answer: Answer[ResponsesRequest]) -> ResponsesStream:
        """The streamed response's events (API-RESP-4)."""
        return ResponsesStream(answer)

    def error_body(self, error: LlmsimError) -> bytes:
        """The OpenAI error shape (ERR-1)."""
        return body_for(error)
