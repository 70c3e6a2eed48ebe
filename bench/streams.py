"""A lean streaming client: N concurrent streamed chat requests over raw sockets (uvloop).

Each stream records when its request went out and when each content frame arrived, so the
inter-token and TTFT errors against the configured latency can be computed per token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

CONTENT = b'{"content":'
END = b"0\r\n\r\n"
CONNECT_BATCH = 200

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@dataclass
class Stream:
    """What one streamed request saw."""

    sent: float = 0.0
    arrivals: list[float] = field(default_factory=list)


@dataclass
class StreamFigures:
    """Timing errors and throughput of one run of N streams."""

    streams: int
    complete: int
    itl_p50: float
    itl_p99: float
    ttft_p99: float
    tokens_per_s: float


def request_bytes(tokens: int) -> bytes:
    """One HTTP/1.1 streamed chat request asking for exactly ``tokens`` tokens."""
    body = json.dumps(
        {
            "model": "bench",
            "messages": [{"role": "user", "content": "Stream please."}],
            "max_tokens": tokens,
            "ignore_eos": True,
            "stream": True,
        }
    ).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def _connect(port: int, count: int) -> list[Connection]:
    connections: list[Connection] = []
    for start in range(0, count, CONNECT_BATCH):
        batch = min(count, start + CONNECT_BATCH) - start
        opened = [asyncio.open_connection("127.0.0.1", port) for _ in range(batch)]
        connections += await asyncio.gather(*opened)
    return connections


async def _run_stream(connection: Connection, payload: bytes, stream: Stream, at: float) -> None:
    reader, writer = connection
    delay = at - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    stream.sent = time.perf_counter()
    writer.write(payload)
    arrivals = stream.arrivals
    while True:
        data = await reader.read(65536)
        if not data:
            return
        arrivals.extend([time.perf_counter()] * data.count(CONTENT))
        if data.endswith(END):
            return


async def run_streams(
    port: int, count: int, tokens: int, ramp: float
) -> tuple[list[Stream], float]:
    """Open ``count`` connections, start one stream on each, evenly over ``ramp`` seconds,
    and wait for all of them to end; returns the streams and the seconds it took."""
    connections = await _connect(port, count)
    payload = request_bytes(tokens)
    streams = [Stream() for _ in range(count)]
    began = time.perf_counter()
    await asyncio.gather(
        *(
            _run_stream(connection, payload, stream, began + ramp * index / count)
            for index, (connection, stream) in enumerate(zip(connections, streams, strict=True))
        )
    )
    elapsed = time.perf_counter() - began
    for _, writer in connections:
        writer.close()
    return streams, elapsed


async def hold_streams(
    port: int, count: int, tokens: int, while_open: Callable[[], Awaitable[None]]
) -> None:
    """Start ``count`` long streams, wait until each has sent its first token, run
    ``while_open`` while they are all open, then drop the connections."""
    connections = await _connect(port, count)
    payload = request_bytes(tokens)
    for _, writer in connections:
        writer.write(payload)
    await asyncio.gather(*(reader.readuntil(CONTENT) for reader, _ in connections))
    await while_open()
    for _, writer in connections:
        writer.close()


def percentile(values: list[float], share: float) -> float:
    """The value below which ``share`` of ``values`` lie (nearest rank)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def figures(
    streams: list[Stream], elapsed: float, ttft: float, itl: float, tokens: int
) -> StreamFigures:
    """Absolute errors |measured - configured| per token gap and per stream TTFT."""
    complete = [s for s in streams if len(s.arrivals) == tokens]
    gaps = [
        abs((later - earlier) - itl)
        for s in complete
        for earlier, later in zip(s.arrivals, s.arrivals[1:], strict=False)
    ]
    ttfts = [abs(s.arrivals[0] - s.sent - ttft) for s in complete]
    delivered = sum(len(s.arrivals) for s in streams)
    return StreamFigures(
        streams=len(streams),
        complete=len(complete),
        itl_p50=percentile(gaps, 0.5),
        itl_p99=percentile(gaps, 0.99),
        ttft_p99=percentile(ttfts, 0.99),
        tokens_per_s=delivered / elapsed,
    )
