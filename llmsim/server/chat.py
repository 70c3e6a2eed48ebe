"""``POST /v1/chat/completions``: prompt rendering, choice bodies and stream frames.

The prompt is the conversation rendered as upstream's simulated chat template (TOK-4):
``### <role>: <text>\\n`` per message. Stream shape (API-CHAT-4): per choice a role chunk with its
first token and one content chunk per token; after every choice ends a finish chunk per choice,
the usage chunk if asked, ``[DONE]``.
"""

from __future__ import annotations

from llmsim.engine.generation import Generation, Prompt
from llmsim.engine.logprobs import chat_entry
from llmsim.engine.tokenizer import SimulatedTokenizer
from llmsim.server.frames import ChoiceFrames, LogprobsBuilder
from llmsim.server.protocol import ChatCompletionRequest, ChatMessage

PATH = "/v1/chat/completions"


def render_conversation(messages: list[ChatMessage]) -> str:
    """The conversation as upstream's simulated chat template renders it."""
    parts = []
    for message in messages:
        role = message.role
        if message.tool_call_id:
            role = f"{role}({message.tool_call_id})"
        parts.append(f"### {role}: {message.plain_text()}\n")
    return "".join(parts)


class ChatEndpoint:
    """How chat completions differ from other generation endpoints."""

    path = PATH
    request_model = ChatCompletionRequest
    id_prefix = "chatcmpl-"
    object_name = "chat.completion"
    chunk_object = "chat.completion.chunk"

    def prompts(
        self, request: ChatCompletionRequest, tokenizer: SimulatedTokenizer
    ) -> list[Prompt]:
        """One prompt: the rendered conversation; echo answers the last message."""
        rendered = render_conversation(request.messages)
        return [Prompt(tokenizer.count(rendered), rendered, request.messages[-1].plain_text())]

    def rule_prompt(self, request: ChatCompletionRequest) -> str:
        """The last user message's text (the last message's when no user spoke)."""
        for message in reversed(request.messages):
            if message.role == "user":
                return message.plain_text()
        return request.messages[-1].plain_text()

    def choice_body(self, index: int, generation: Generation, top: int | None) -> dict[str, object]:
        """One entry of a non-streamed response's ``choices`` (API-CHAT-2, API-CHAT-3)."""
        message: dict[str, object] = {"role": "assistant"}
        text = "".join(generation.tokens)
        if text:
            message["content"] = text
        logprobs = None
        if top is not None:
            logprobs = {"content": [chat_entry(t, p, top) for p, t in enumerate(generation.tokens)]}
        return {
            "index": index,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": generation.finish_reason,
        }

    def choice_frames(self, envelope: bytes, index: int, top: int | None) -> ChoiceFrames:
        """The stream frames of one choice."""
        choice = envelope + b',"choices":[{"index":%d,"delta":' % index
        end = b',"finish_reason":null}],"usage":null}'
        logprobs: LogprobsBuilder | None = None
        if top is not None:

            def logprobs(text: str, position: int, offset: int) -> object:
                return {"content": [chat_entry(text, position, top)]}

        return ChoiceFrames(
            head=choice + b'{"content":',
            middle=b'},"logprobs":',
            tail=end,
            finish_head=choice + b'{},"logprobs":null,"finish_reason":',
            finish_tail=b'}],"usage":null}',
            first=b"data: "
            + choice
            + b'{"role":"assistant","content":""},"logprobs":null'
            + end
            + b"\n\n",
            logprobs=logprobs,
        )
