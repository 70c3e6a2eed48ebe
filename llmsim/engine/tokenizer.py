"""What a tokenizer offers the engine, and the simulated tokenizer: a regex split with stable
token ids, as upstream does.

A token is a word (ASCII letters, digits, ``_``) or one punctuation symbol, each with the
whitespace that follows it; its id is FNV-1a-32 of its text. ``This is a test.`` is 5 tokens.
Unlike upstream, characters the upstream pattern cannot match (non-ASCII letters, ``|``,
backticks, leading whitespace) become tokens of their own instead of being dropped, so echoed
text keeps every character; ASCII text splits exactly as upstream splits it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

_SYMBOLS = r"""[{}:,\-.?!;@#$%^&*()+_~/\\><\[\]="']"""
_WHITESPACE = r"[\t\n\f\r ]"
_TOKEN = re.compile(
    rf"{_SYMBOLS}{_WHITESPACE}*|\w+{_WHITESPACE}*|[^\w\t\n\f\r ]{_WHITESPACE}*|^{_WHITESPACE}+",
    re.ASCII,
)
_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193
_ID_CACHE_LIMIT = 1 << 18
LONG_TEXT = 20_000
"""Characters above which tokenizing yields to the event loop between pieces."""


def suspends(text: str) -> bool:
    """Whether counting or encoding ``text`` lets other tasks run before it returns."""
    return len(text) > LONG_TEXT


def fnv1a_32(data: bytes) -> int:
    """The 32-bit FNV-1a hash of ``data``."""
    value = _FNV32_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return value


class Tokenizer(Protocol):
    """Token counts, ids and texts, and chat rendering, as the engine needs them."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """The token ids of ``text``."""
        ...

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``."""
        ...

    def split(self, text: str) -> list[str]:
        """The texts of the tokens of ``text``, one per token."""
        ...

    def count(self, text: str) -> int:
        """The number of tokens of ``text``."""
        ...

    def token_texts(self, ids: Sequence[int]) -> list[str]:
        """The text of each token id, one by one."""
        ...

    def render_chat(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The conversation as the model's prompt text (its chat template), ready to encode.
        Each message has ``role`` and ``content`` (text) and may have ``tool_call_id``."""
        ...

    async def encode_async(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """``encode``, without holding up the event loop for long texts."""
        ...

    async def count_async(self, text: str, add_special_tokens: bool = False) -> int:
        """``count``, without holding up the event loop for long texts."""
        ...


class SimulatedTokenizer:
    """Splits text into upstream-compatible tokens; ids are cached per distinct token text."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._texts: dict[int, str] = {}

    def split(self, text: str) -> list[str]:
        """The token texts of ``text``; joined, they give ``text`` back."""
        return _TOKEN.findall(text)

    def count(self, text: str) -> int:
        """The number of tokens in ``text``."""
        return len(_TOKEN.findall(text))

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """The token ids of ``text`` (there are no special tokens)."""
        return [self.token_id(token) for token in _TOKEN.findall(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ids this tokenizer produced; others read as ``<unk_ID>``."""
        return "".join(self.token_texts(ids))

    def token_texts(self, ids: Sequence[int]) -> list[str]:
        """The text of each id this tokenizer produced (``<unk_ID>`` for others)."""
        texts = self._texts
        return [texts.get(token_id, f"<unk_{token_id}>") for token_id in ids]

    async def encode_async(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """``encode`` in pieces cut at word starts, letting other tasks run between pieces."""
        if len(text) <= LONG_TEXT:
            return self.encode(text)
        ids: list[int] = []
        for piece in word_aligned_pieces(text, LONG_TEXT):
            ids.extend(self.encode(piece))
            await asyncio.sleep(0)
        return ids

    async def count_async(self, text: str, add_special_tokens: bool = False) -> int:
        """``count`` in pieces cut at word starts, letting other tasks run between pieces."""
        if len(text) <= LONG_TEXT:
            return len(_TOKEN.findall(text))
        total = 0
        for piece in word_aligned_pieces(text, LONG_TEXT):
            total += len(_TOKEN.findall(piece))
            await asyncio.sleep(0)
        return total

    def render_chat(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """Upstream's simulated chat rendering (TOK-4): ``### <role>: <text>\\n`` per message,
        the role followed by ``(<tool_call_id>)`` for tool results."""
        parts = []
        for message in messages:
            role = str(message["role"])
            if message.get("tool_call_id"):
                role = f"{role}({message['tool_call_id']})"
            parts.append(f"### {role}: {message.get('content') or ''}\n")
        return "".join(parts)

    def token_id(self, token: str) -> int:
        """The id of one token text (FNV-1a-32 of its UTF-8 bytes)."""
        found = self._ids.get(token)
        if found is None:
            if len(self._ids) >= _ID_CACHE_LIMIT:
                self._ids.clear()
                self._texts.clear()
            found = self._ids[token] = fnv1a_32(token.encode())
            self._texts[found] = token
        return found


def word_aligned_pieces(text: str, size: int) -> list[str]:
    """``text`` cut into pieces of about ``size`` characters, each cut just before a
    non-space character that follows a space, so that no token spans two pieces."""
    pieces = []
    start = 0
    while len(text) - start > size:
        cut = start + size
        while cut < len(text) and not (text[cut - 1].isspace() and not text[cut].isspace()):
            cut += 1
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return [piece for piece in pieces if piece]


def load_tokenizer(path: str | None, model_id: str | None) -> Tokenizer:
    """The simulated tokenizer (no path, no id), or a real one (may raise ``StartupError``)."""
    if path is None and model_id is None:
        return SimulatedTokenizer()
    from llmsim.engine.hf_tokenizer import load_hf_tokenizer

    return load_hf_tokenizer(path, model_id)
