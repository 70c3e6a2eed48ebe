"""One seeded random source per rank, split per request.

The root source is drawn once per request, in arrival order, to seed that request's own
``random.Random``; everything random about a request (its text, its timings) comes from its
own source. So a fixed seed and a fixed request order give the same output however requests
interleave in time. Request ids are UUID v5 of ``<seed>-<port>-<counter>``, as upstream (HDR-3).
"""

from __future__ import annotations

import random
import uuid


class RandomSource:
    """The per-rank root of randomness and request ids."""

    def __init__(self, seed: int, port: int):
        self._root = random.Random(seed)
        self._prefix = f"{seed}-{port}-"
        self._counter = 0

    def next_request(self) -> tuple[str, random.Random]:
        """The next request's id and its own random source."""
        request_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self._prefix}{self._counter}"))
        self._counter += 1
        return request_id, random.Random(self._root.getrandbits(64))
