"""Parsing of durations as scenario files write them.

Durations accept Go-style strings (``750us``, ``250ms``, ``1.5s``, ``2m``, ``1m30s``) and bare
numbers, which mean milliseconds (upstream's deprecated form). Values are seconds as floats.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
DURATION_PATTERN = r"^\s*-?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+\s*$|^\s*-?\d+(\.\d*)?\s*$"


def parse_duration(value: Any) -> float:
    """Return the duration ``value`` in seconds; raise ``ValueError`` if it is not one."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 250ms or 1.5s, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value) / 1000.0
    elif isinstance(value, str):
        seconds = _parse_duration_text(value)
    else:
        raise ValueError(f"expected a duration such as 250ms or 1.5s, got {type(value).__name__}")
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError("a duration must be a finite number")
    if seconds < 0:
        raise ValueError("a duration must not be negative")
    return seconds


def _parse_duration_text(text: str) -> float:
    stripped = text.strip()
    sign = 1.0
    if stripped.startswith("-"):
        sign, stripped = -1.0, stripped[1:]
    try:
        return sign * float(stripped) / 1000.0
    except ValueError:
        pass
    pos, total = 0, 0.0
    while pos < len(stripped):
        match = _PART.match(stripped, pos)
        if match is None:
            raise ValueError(
                f"invalid duration {text!r}: use a number with a unit (ns, us, ms, s, m, h), "
                "e.g. 250ms or 1.5s"
            )
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"invalid duration {text!r}: it is empty")
    return sign * total


def format_duration(seconds: float) -> str:
    """Render seconds as the shortest readable duration string (``250ms``, ``1.5s``, ``0s``)."""
    if seconds == 0:
        return "0s"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{round(seconds / scale, 6):g}{unit}"
    return f"{round(seconds / 1e-9, 3):g}ns"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"type": "number", "minimum": 0},
            ],
            "description": "A duration: 750us, 250ms, 1.5s, 2m; a bare number means milliseconds.",
        }
    ),
]
"""A non-negative duration in seconds, written as in scenario files."""
