"""The token pacer: every stream's frames on their own deadlines from one timer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest

from llmsim.server.pacer import DUE_EARLY, TokenPacer

ITL = 0.005
TIMER_SLACK = 0.004
"""How late a frame may be in a test: the loop's 1 ms timer resolution plus scheduling noise."""


class Recorder:
    """An ASGI send that records each body part and when it came."""

    def __init__(self) -> None:
        self.parts: list[tuple[float, bytes]] = []

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        assert message["type"] == "http.response.body" and message["more_body"]
        self.parts.append((time.perf_counter(), message["body"]))


def numbered(count: int, name: str = "f") -> Iterator[bytes]:
    return (f"{name}{i}".encode() for i in range(1, count))


def deadlines(start: float, gap: float = ITL) -> Iterator[float]:
    return (start + gap * i for i in range(1, 1000))


def test_frames_go_out_on_their_deadlines_and_the_last_comes_back() -> None:
    async def run() -> tuple[Recorder, tuple[int, bytes], float, float]:
        send, start = Recorder(), time.perf_counter()
        times = deadlines(start)
        result = await TokenPacer().pace(send, numbered(6), times.__next__, 5, 6)
        return send, result, start, time.perf_counter()

    send, result, start, ended = asyncio.run(run())
    assert result == (5, b"f5")
    assert [body for _, body in send.parts] == [b"f1", b"f2", b"f3", b"f4"]
    for index, (at, _) in enumerate(send.parts, start=1):
        assert start + index * ITL - DUE_EARLY <= at <= start + index * ITL + TIMER_SLACK
    assert ended >= start + 5 * ITL - DUE_EARLY


def test_a_stop_before_the_last_hands_back_the_unwritten_frame() -> None:
    async def run() -> tuple[Recorder, tuple[int, bytes]]:
        send = Recorder()
        times = deadlines(time.perf_counter(), 0.0)
        return send, await TokenPacer().pace(send, numbered(10), times.__next__, 9, 3)

    send, result = asyncio.run(run())
    assert result == (3, b"f3")
    assert [body for _, body in send.parts] == [b"f1", b"f2"]


def test_streams_interleave_in_deadline_order() -> None:
    async def run() -> Recorder:
        send, start, pacer = Recorder(), time.perf_counter(), TokenPacer()
        slow = deadlines(start, 2 * ITL)
        fast = deadlines(start + ITL / 2, ITL)
        await asyncio.gather(
            pacer.pace(send, numbered(4, "s"), slow.__next__, 3, 3),
            pacer.pace(send, numbered(7, "f"), fast.__next__, 6, 6),
        )
        return send

    bodies = [body for _, body in asyncio.run(run()).parts]
    assert bodies == [b"f1", b"s1", b"f2", b"f3", b"s2", b"f4", b"f5"]


def test_a_write_held_back_by_the_transport_delays_that_stream_only() -> None:
    async def run() -> tuple[list[bytes], list[bytes]]:
        pacer, start = TokenPacer(), time.perf_counter()
        drained = asyncio.get_running_loop().create_future()
        held: list[bytes] = []

        async def slow_client(message: MutableMapping[str, Any]) -> None:
            if message["body"] == b"h2":
                await drained  # the transport is paused until the client reads
            held.append(message["body"])

        other = Recorder()
        slow = deadlines(start, 0.0)
        normal = deadlines(start, ITL)
        held_back = pacer.pace(slow_client, numbered(5, "h"), slow.__next__, 4, 4)
        going = pacer.pace(other, numbered(5, "o"), normal.__next__, 4, 4)
        await going
        assert held == [b"h1"] and not held_back.done()
        drained.set_result(None)
        await held_back
        return held, [body for _, body in other.parts]

    held, other = asyncio.run(run())
    assert held == [b"h1", b"h2", b"h3"]
    assert other == [b"o1", b"o2", b"o3"]


def test_a_cancelled_stream_is_dropped_at_its_next_deadline() -> None:
    async def run() -> tuple[Recorder, TokenPacer]:
        send, pacer = Recorder(), TokenPacer()
        times = deadlines(time.perf_counter(), ITL)
        paced = pacer.pace(send, numbered(100), times.__next__, 99, 99)
        await asyncio.sleep(2.5 * ITL)
        paced.cancel()
        await asyncio.sleep(3 * ITL)
        return send, pacer

    send, pacer = asyncio.run(run())
    assert 1 <= len(send.parts) <= 3
    assert len(pacer) == 0


def test_a_failing_write_fails_the_stream() -> None:
    async def broken(message: MutableMapping[str, Any]) -> None:
        raise RuntimeError("transport gone")

    async def run() -> None:
        times = deadlines(time.perf_counter(), 0.0)
        await TokenPacer().pace(broken, numbered(5), times.__next__, 4, 4)

    with pytest.raises(RuntimeError, match="transport gone"):
        asyncio.run(run())
