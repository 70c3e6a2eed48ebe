"""One seeded random source per rank, split per request.

Each request draws a 64-bit key from the root source in arrival order. A request that makes
its answer without letting another task run first (the usual case) draws the answer's content
straight from the root, which is then still in arrival order; anything drawn later, while
other requests interleave (sampled latencies, content after a long prompt was counted in
pieces), comes from a ``random.Random`` seeded with the request's key and made only when
needed (seeding one costs more than the rest of a small request's draws). So a fixed seed and
a fixed request order give the same output however requests interleave in time. Request ids
are UUID v5 of ``<seed>-<port>-<counter>``, as upstream (HDR-3).
"""

from __future__ import annotations

import hashlib
import random
import uuid


class RandomSource:
    """The per-rank root of randomness and request ids."""

    def __init__(self, seed: int, port: int):
        self.root = random.Random(seed)
        """The shared source: drawn only in arrival order."""
        self._prefix = f"{seed}-{port}-"
        self._counter = 0

    def next_request(self) -> tuple[str, int]:
        """The next request's id and the key of its own random source."""
        request_id = uuid5_url(f"{self._prefix}{self._counter}")
        self._counter += 1
        return request_id, self.root.getrandbits(64)


_URL_NAMESPACE = uuid.NAMESPACE_URL.bytes


def uuid5_url(name: str) -> str:
    """``str(uuid.uuid5(uuid.NAMESPACE_URL, name))``, without building UUID objects."""
    digest = bytearray(hashlib.sha1(_URL_NAMESPACE + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
