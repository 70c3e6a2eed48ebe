"""One seeded random source per rank, split per request.

The root source is drawn once per request, in arrival order, to seed that request's own
``random.Random``; everything random about a request (its text, its timings) comes from its
own source. So a fixed seed and a fixed request order give the same output however requests
interleave in time. Request ids are UUID v5 of ``<seed>-<port>-<counter>``, as upstream (HDR-3).
"""

from __future__ import annotations

import hashlib
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
        request_id = uuid5_url(f"{self._prefix}{self._counter}")
        self._counter += 1
        return request_id, random.Random(self._root.getrandbits(64))


_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes


def uuid5_url(name: str) -> str:
    """``str(uuid.uuid5(uuid.NAMESPACE_URL, name))``, without building UUID objects."""
    digest = bytearray(hashlib.sha1(_URL_NAMESPACE + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
