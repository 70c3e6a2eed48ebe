"""Response length and built-in response text, by upstream's rules (GEN-2, GEN-3, GEN-4).

The sentences are llmsim's own; like upstream's, each ends with a space so that sentences join
at token boundaries, and a response is cut at a token boundary.
"""

from __future__ import annotations

import random
from bisect import bisect_left

from llmsim.engine.tokenizer import Tokenizer

SENTENCES = (
    "The quick brown fox jumps over the lazy dog. ",
    "Simulated tokens arrive right on schedule! ",
    "Ask me anything; I answer in plain, honest words. ",
    "Rain is expected after noon, with a light wind from the west. ",
    "A journey of a thousand miles begins with a single step. ",
    "Numbers like 3.14, 42 and 1,000 are tokens too (mostly). ",
    "Every request gets its turn: first come, first served. ",
    "Here is a list: apples, pears & plums [fresh] {ripe} <sweet>. ",
    "Latency is a feature of this server, not a bug. ",
    "Knowledge is knowing the tomato is a fruit; wisdom is leaving it out of dessert. ",
    "Hello there, how may I help you today? ",
)

_HISTOGRAM_EDGES = (0.2, 0.5, 0.7, 0.75, 0.85)


class TextSource:
    """Random response text made of the built-in sentences' tokens.

    Only tokens that, taken alone, encode back to themselves are used (a tokenizer that does
    not know a word drops it), so a client that re-tokenizes each streamed chunk counts exactly
    one token per chunk.
    """

    def __init__(self, tokenizer: Tokenizer, sentences: tuple[str, ...] = SENTENCES):
        usable = []
        for sentence in sentences:
            ids = tokenizer.encode(sentence)
            texts = tokenizer.token_texts(ids)
            kept = tuple(t for t, i in zip(texts, ids, strict=True) if tokenizer.encode(t) == [i])
            if kept:
                usable.append(kept)
        if not usable:
            raise ValueError("none of the built-in text can be written with this tokenizer")
        self._sentences = tuple(usable)

    def tokens(self, rng: random.Random, count: int) -> list[str]:
        """``count`` tokens of random sentences, the last sentence cut at a token boundary."""
        out: list[str] = []
        sentences = self._sentences
        while len(out) < count:
            out.extend(sentences[rng.randrange(len(sentences))])
        del out[count:]
        return out


def response_length(rng: random.Random, max_tokens: int | None, room: int, ignore_eos: bool) -> int:
    """How many tokens a random response has (GEN-2).

    ``max_tokens`` is the request's limit (None when absent); ``room`` is what the context
    window leaves (max-model-len minus prompt tokens), the limit when none is given.
    """
    limit = max_tokens if max_tokens is not None else room
    if ignore_eos:
        return limit
    if max_tokens is not None:
        return histogram_length(rng, limit)
    if limit < 20:
        return rng.randint(1, limit)
    while True:
        length = round(rng.gauss(40, 20))
        if 1 <= length <= limit:
            return length


def histogram_length(rng: random.Random, limit: int) -> int:
    """Upstream's response-length histogram for a request with ``max_tokens = limit`` (GEN-3)."""
    if limit <= 1:
        return limit
    if limit <= 6:
        return rng.randint(1, limit)
    r = rng.random()
    if r > _HISTOGRAM_EDGES[-1]:
        return limit
    bucket = bisect_left(_HISTOGRAM_EDGES, r)
    if limit <= 101:
        size = (limit - 1) / 5
        low, high = int(size * bucket) + 1, int(size * (bucket + 1))
    elif bucket < 3:
        low, high = 20 * bucket + 1, 20 * (bucket + 1)
    else:
        extra = limit - 80
        low, high = (61, 60 + extra) if bucket == 3 else (61 + extra, 80 + extra)
    return rng.randint(min(low, limit - 1), min(high, limit - 1))
