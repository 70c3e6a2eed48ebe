"""``POST /v1/chat/completions``: prompt rendering, choice bodies and stream frames.

The prompt is the conversation through the tokenizer's chat template (the simulated one renders
``### <role>: <text>\\n`` per message, as upstream's, TOK-4). Stream shape (API-CHAT-4): per
choice a role chunk with its first token and one content chunk per token; after every choice
ends a finish chunk per choice, the usage chunk if asked, ``[DONE]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llmsim.engine.engine import Choice
from llmsim.engine.generation import Generation, Prompt
from llmsim.engine.logprobs import chat_entry
from llmsim.engine.tokenizer import Tokenizer
from llmsim.server.conversation import chat_prompt
from llmsim.server.frames import ChoiceFrames, LogprobsBuilder
from llmsim.server.generation import Answer
from llmsim.server.openai_shape import OpenAIEndpoint
from llmsim.server.protocol import ChatCompletionRequest

PATH = "/v1/chat/completions"


class ChatEndpoint(OpenAIEndpoint):
    """How chat completions differ from other generation endpoints."""

    path = PATH
    request_model = ChatCompletionRequest
    id_prefix = "chatcmpl-"
    object_name = "chat.completion"
    chunk_object = "chat.completion.chunk"

    async def prompts(
        self,
        request: ChatCompletionRequest,
        tokenizer: Tokenizer,
        with_ids: bool,
        media_tokens: Mapping[str, int],
    ) -> list[Prompt]:
        """One prompt: the conversation through the chat template; echo answers the last
        message."""
        echo = request.messages[-1].plain_text()
        return [await chat_prompt(request.messages, tokenizer, with_ids, media_tokens, echo)]

    def rule_prompt(self, request: ChatCompletionRequest) -> str:
        """The last user message's text (the last message's when no user spoke)."""
        for message in reversed(request.messages):
            if message.role == "user":
                return message.plain_text()
        return request.messages[-1].plain_text()

    def tools(self, request: ChatCompletionRequest) -> tuple[list[dict[str, Any]], Any]:
        """The request's tools and ``tool_choice`` (TOOL-2)."""
        return request.tools or [], request.tool_choice_value()

    def tool_call_frames(self, envelope: bytes, index: int, generation: Generation) -> list[bytes]:
        """Chunks of a tool-call answer, as vLLM streams them (API-CHAT-5): each call opens
        with its index, id, type and name, then one chunk per token of its arguments."""
        choice = envelope + b',"choices":[{"index":%d,"delta":{"tool_calls":[' % index
        end = b']},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
        frames = []
        call = -1
        for token in generation.tokens:
            if token == "":  # opens the next call (argument tokens are never empty)
                call += 1
                made = generation.tool_calls[call]
                delta: dict[str, object] = {
                    "index": call,
                    "id": made.id,
                    "type": "function",
                    "function": {"name": made.name, "arguments": ""},
                }
            else:
                delta = {"index": call, "function": {"arguments": token}}
            frames.append(b"data: " + choice + orjson.dumps(delta) + end)
        return frames

    def choice_body(self, choice: Choice, answer: Answer[Any]) -> dict[str, object]:
        """One entry of a non-streamed response's ``choices`` (API-CHAT-2, API-CHAT-3): the
        reasoning under its key, the text (with the image, in omni's list form), tool calls."""
        generation, top = choice.generation, answer.top
        message: dict[str, object] = {"role": "assistant"}
        tokens = generation.tokens
        if generation.reasoning:
            key = _reasoning_key(answer)
            message[key] = "".join(tokens[: generation.reasoning])
            tokens = tokens[generation.reasoning :]
        logprobs = None
        if generation.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in generation.tool_calls
            ]
            text = ""
        else:
            text = "".join(tokens)
            if top is not None:
                start = generation.reasoning
                entries = [chat_entry(t, start + p, top) for p, t in enumerate(tokens)]
                logprobs = {"content": entries}
        if generation.image is not None:
            blocks: list[dict[str, object]] = [{"type": "text", "text": text}] if text else []
            blocks.append(_image_block(generation.image))
            message["content"] = blocks
        elif text:
            message["content"] = text
        return {
            "index": choice.index,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": generation.finish_reason,
        }

    def choice_frames(self, envelope: bytes, choice: Choice, answer: Answer[Any]) -> ChoiceFrames:
        """The stream frames of one choice: omni text deltas in list form and an image chunk
        when the answer has an image; reasoning deltas first when it reasons."""
        top = answer.top
        generation = choice.generation
        head = envelope + b',"choices":[{"index":%d,"delta":' % choice.index
        end = b',"finish_reason":null}],"usage":null}'
        logprobs: LogprobsBuilder | None = None
        if top is not None:

            def logprobs(text: str, position: int, offset: int) -> object:
                return {"content": [chat_entry(text, position, top)]}

        content, close = b'{"content":', b"}"
        if generation.image is not None:
            content, close = b'{"content":[{"type":"text","text":', b"}]}"
        reasoning_head = b""
        if generation.reasoning:
            reasoning_head = head + b'{"' + _reasoning_key(answer).encode() + b'":'
        frames = ChoiceFrames(
            head=head + content,
            middle=close + b',"logprobs":',
            tail=end,
            finish_head=head + b'{},"logprobs":null,"finish_reason":',
            finish_tail=b'}],"usage":null}',
            first=b"data: "
            + head
            + b'{"role":"assistant","content":""},"logprobs":null'
            + end
            + b"\n\n",
            logprobs=logprobs,
            reasoning=generation.reasoning,
            reasoning_head=reasoning_head,
        )
        if generation.image is not None:
            delta = {"content": [_image_block(generation.image)]}
            frames.image = (
                b"data: "
                + head
                + orjson.dumps(delta)
                + b',"logprobs":null,"finish_reason":null}],"modality":"image","usage":null}\n\n'
            )
        return frames


def _reasoning_key(answer: Answer[Any]) -> str:
    """The message key of reasoning text in the answer's scenario."""
    reasoning = answer.state.plan.scenario.responses.reasoning
    return reasoning.field if reasoning is not None else "reasoning_content"


def _image_block(url: str) -> dict[str, object]:
    return {"type": "image_url", "image_url": {"url": url}}
