"""The simulated tokenizer: a regex split with stable token ids, as upstream does.

A token is a word (ASCII letters, digits, ``_``) or one punctuation symbol, each with the
whitespace that follows it; its id is FNV-1a-32 of its text. ``This is a test.`` is 5 tokens.
Unlike upstream, characters the upstream pattern cannot match (non-ASCII letters, ``|``,
backticks, leading whitespace) become tokens of their own instead of being dropped, so echoed
text keeps every character; ASCII text splits exactly as upstream splits it.
"""

from __future__ import annotations

import re

_SYMBOLS = r"""[{}:,\-.?!;@#$%^&*()+_~/\\><\[\]="']"""
_WHITESPACE = r"[\t\n\f\r ]"
_TOKEN = re.compile(
    rf"{_SYMBOLS}{_WHITESPACE}*|\w+{_WHITESPACE}*|[^\w\t\n\f\r ]{_WHITESPACE}*|^{_WHITESPACE}+",
    re.ASCII,
)
_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193
_ID_CACHE_LIMIT = 1 << 18


def fnv1a_32(data: bytes) -> int:
    """The 32-bit FNV-1a hash of ``data``."""
    value = _FNV32_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV32_PRIME) & 0xFFFFFFFF
    return value


class SimulatedTokenizer:
    """Splits text into upstream-compatible tokens; ids are cached per distinct token text."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def split(self, text: str) -> list[str]:
        """The token texts of ``text``; joined, they give ``text`` back."""
        return _TOKEN.findall(text)

    def count(self, text: str) -> int:
        """The number of tokens in ``text``."""
        return len(_TOKEN.findall(text))

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text``."""
        return [self.token_id(token) for token in _TOKEN.findall(text)]

    def token_id(self, token: str) -> int:
        """The id of one token text (FNV-1a-32 of its UTF-8 bytes)."""
        found = self._ids.get(token)
        if found is None:
            if len(self._ids) >= _ID_CACHE_LIMIT:
                self._ids.clear()
            found = self._ids[token] = fnv1a_32(token.encode())
        return found
