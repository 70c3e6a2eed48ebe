"""Simulated log-probabilities (LP-1): a fixed pattern, not a model's.

The token at position p has logprob ``-1.0 - (p mod 3) x 0.1``; its j-th alternative (named
``<token>_<j>``) ``0.5 x j`` less. Entries are built only for requests that ask for them.
"""

from __future__ import annotations


def token_logprob(position: int, alternative: int = 0) -> float:
    """The logprob of alternative ``alternative`` (0: the chosen token) at ``position``."""
    return round(-1.0 - (position % 3) * 0.1 - alternative * 0.5, 6)


def _name(token: str, alternative: int) -> str:
    return token if alternative == 0 else f"{token}_{alternative}"


def chat_entry(token: str, position: int, top: int) -> dict[str, object]:
    """One entry of a chat ``logprobs.content`` list (LP-2), with ``top`` alternatives."""
    return {
        "token": token,
        "logprob": token_logprob(position),
        "bytes": list(token.encode()),
        "top_logprobs": [
            {
                "token": _name(token, j),
                "logprob": token_logprob(position, j),
                "bytes": list(_name(token, j).encode()),
            }
            for j in range(top)
        ],
    }


def completion_logprobs(
    tokens: list[str], top: int, first_position: int = 0, first_offset: int = 0
) -> dict[str, object]:
    """A completions ``logprobs`` object (LP-3) for ``tokens``; offsets count characters."""
    offsets = []
    offset = first_offset
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    positions = range(first_position, first_position + len(tokens))
    return {
        "tokens": tokens,
        "token_logprobs": [token_logprob(p) for p in positions],
        "top_logprobs": [
            {_name(token, j): token_logprob(p, j) for j in range(max(top, 1))}
            for token, p in zip(tokens, positions, strict=True)
        ],
        "text_offset": offsets,
    }
