"""``POST /v1/chat/completions``: prompt rendering, response body and stream frames.

The prompt is the conversation rendered as upstream's simulated chat template (TOK-4):
``### <role>: <text>\\n`` per message. Stream shape (API-CHAT-4): a role chunk with the first
token, one content chunk per token, a finish chunk, the usage chunk if asked, ``[DONE]``.
"""

from __future__ import annotations

import orjson

from llmsim.engine.generation import Generation, Prompt
from llmsim.engine.tokenizer import SimulatedTokenizer
from llmsim.server.frames import ChunkTemplate, StreamFrames, envelope, usage_object
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

    def prompt(self, request: ChatCompletionRequest, tokenizer: SimulatedTokenizer) -> Prompt:
        """Prompt tokens of the rendered conversation; echo answers the last message."""
        rendered = render_conversation(request.messages)
        return Prompt(tokenizer.count(rendered), request.messages[-1].plain_text())

    def body(
        self, request_id: str, created: int, model: str, generation: Generation, prompt: Prompt
    ) -> bytes:
        """The non-streamed response body (API-CHAT-2)."""
        message: dict[str, object] = {"role": "assistant"}
        text = "".join(generation.tokens)
        if text:
            message["content"] = text
        return orjson.dumps(
            {
                "id": f"chatcmpl-{request_id}",
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": generation.finish_reason,
                    }
                ],
                "usage": usage_object(prompt.tokens, len(generation.tokens)),
            }
        )

    def frames(self, request_id: str, created: int, model: str) -> StreamFrames:
        """The stream frames of one response."""
        head = envelope(f"chatcmpl-{request_id}", "chat.completion.chunk", created, model)
        choice = head + b',"choices":[{"index":0,"delta":'
        end = b',"logprobs":null,"finish_reason":'
        role = b'{"role":"assistant","content":""}' + end + b'null}],"usage":null}'
        return StreamFrames(
            head,
            token=ChunkTemplate(choice + b'{"content":', b"}" + end + b'null}],"usage":null}'),
            finish=ChunkTemplate(choice + b"{}" + end, b'}],"usage":null}'),
            first=ChunkTemplate(choice, b"").fill_raw(role),
        )
