"""A conversation as the engine's prompt: chat messages through the chat template, with each
image, audio clip or video counted as a fixed number of prompt tokens, as a vision or audio
model's processor expands them (the URL or data itself is not text the model reads).

Chat completions, the Responses API and Anthropic Messages all arrive here as chat messages. A
media item's tokens sit where the item is in the conversation; their ids derive from the item's
URL or data, so the same image in the same place reuses the prefix cache and another does not.
"""

from __future__ import annotations

from collections.abc import Mapping

from llmsim.engine.generation import Prompt
from llmsim.engine.tokenizer import Tokenizer, fnv1a_32
from llmsim.server.protocol import ChatMessage, ContentPart

MEDIA_MARK = "\ufffc"
"""Stands for one media item in the rendered conversation until it is counted."""
MEDIA_KINDS = {"image_url": "image", "input_audio": "audio", "video_url": "video"}
"""Content part types that carry media, and the media kind each is counted as."""


def _media_key(part: ContentPart) -> str | None:
    """The URL or data identifying a media part; None for other parts."""
    if part.type == "image_url" and part.image_url is not None:
        return part.image_url.url
    if part.type == "video_url" and part.video_url is not None:
        return part.video_url.url
    if part.type == "input_audio" and part.input_audio is not None:
        return part.input_audio.data
    return None


def conversation(
    messages: list[ChatMessage], media: list[tuple[str, str]] | None = None
) -> list[dict[str, str]]:
    """Messages as chat templates take them: role, text content (text parts joined by newlines,
    as vLLM joins them; each media part a ``MEDIA_MARK``, its kind and key appended to
    ``media``), and the tool call id of a tool result. Assistant tool calls are appended as
    ``[name(arguments)]``."""
    out = []
    for message in messages:
        if isinstance(message.content, list):
            pieces = []
            for part in message.content:
                key = _media_key(part)
                if key is not None:
                    pieces.append(MEDIA_MARK)
                    if media is not None:
                        media.append((MEDIA_KINDS[part.type], key))
                elif part.type == "text" and part.text is not None:
                    pieces.append(part.text)
            text = "\n".join(pieces) + message.tool_call_text()
        else:
            text = message.plain_text()
        item = {"role": message.role, "content": text}
        if message.tool_call_id:
            item["tool_call_id"] = message.tool_call_id
        out.append(item)
    return out


async def chat_prompt(
    messages: list[ChatMessage],
    tokenizer: Tokenizer,
    with_ids: bool,
    media_tokens: Mapping[str, int],
    echo: str,
    add_special_tokens: bool = False,
) -> Prompt:
    """The conversation as one prompt answering ``echo`` in echo mode; token ids only
    ``with_ids`` (the count alone is cheaper); ``add_special_tokens`` as /tokenize asks."""
    special = add_special_tokens
    media: list[tuple[str, str]] = []
    rendered = tokenizer.render_chat(conversation(messages, media))
    if not media:
        if not with_ids:
            return Prompt(await tokenizer.count_async(rendered, special), rendered, echo)
        ids = await tokenizer.encode_async(rendered, special)
        return Prompt(len(ids), rendered, echo, token_ids=tuple(ids))
    pieces = rendered.split(MEDIA_MARK)
    if not with_ids:
        count = sum(media_tokens[kind] for kind, _ in media)
        for index, piece in enumerate(pieces):
            count += await tokenizer.count_async(piece, special and index == 0)
        return Prompt(count, rendered, echo)
    ids = list(await tokenizer.encode_async(pieces[0], special))
    for (kind, key), piece in zip(media, pieces[1:], strict=True):
        ids.extend([fnv1a_32(key.encode())] * media_tokens[kind])
        ids.extend(await tokenizer.encode_async(piece))
    return Prompt(len(ids), rendered, echo, token_ids=tuple(ids))
