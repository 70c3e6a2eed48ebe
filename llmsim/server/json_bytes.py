"""JSON bytes for answers: orjson, or the standard library for what orjson cannot write.

Answers echo parts of the request (the Responses API returns its ``metadata``, ``tools`` and
``text`` settings), and JSON allows integers of any size while orjson writes only 64-bit ones.
"""

from __future__ import annotations

import json

import orjson


def json_bytes(value: object) -> bytes:
    """``value`` as compact JSON; integers beyond 64 bits are written exactly."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
