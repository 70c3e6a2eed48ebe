"""Honest time: clients measure the configured TTFT and ITL, under concurrency.

Tolerances come from the issue's contract for a 2-core machine with the client on it: TTFT within
10 ms, p99 inter-token gap within 5 ms of the configuration at 100 concurrent streams, and a
non-streamed answer of n tokens after TTFT + (n-1) * ITL within 20 ms.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support import RunningServer

pytestmark = pytest.mark.usefixtures("steady_gc")

TTFT = 0.200
ITL = 0.020
TOKENS = 40
STREAMS = 100

SCENARIO = f"""
version: 1
seed: 5
model: {{name: timed, max-model-len: 4096}}
engine: {{max-num-seqs: 128}}
latency:
  time-to-first-token: {int(TTFT * 1000)}ms
  inter-token-latency: {int(ITL * 1000)}ms
"""


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


def chat(stream: bool, tokens: int) -> dict[str, object]:
    return {
        "model": "timed",
        "messages": [{"role": "user", "content": "Time me."}],
        "max_tokens": tokens,
        "ignore_eos": True,
        "stream": stream,
    }


async def one_stream(client: httpx.AsyncClient, url: str) -> tuple[float, list[float]]:
    """Time to first content chunk, and the gaps between content chunks."""
    arrivals: list[float] = []
    sent: list[float] = []

    async def trace(event: str, info: dict[str, object]) -> None:
        if event == "http11.send_request_body.complete":
            sent.append(time.perf_counter())

    request = chat(True, TOKENS)
    async with client.stream("POST", url, json=request, extensions={"trace": trace}) as response:
        assert response.status_code == 200
        # Raw bytes, not lines: the client's own parsing would add its delay to each gap.
        async for chunk in response.aiter_raw():
            now = time.perf_counter()
            arrivals.extend(itertools.repeat(now, chunk.count(b'"delta":{"content":')))
    assert len(arrivals) == TOKENS
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    return arrivals[0] - sent[0], gaps


def test_ttft_and_itl_hold_at_100_concurrent_streams(server: RunningServer) -> None:
    async def run() -> list[tuple[float, list[float]]]:
        limits = httpx.Limits(max_connections=STREAMS + 10, max_keepalive_connections=STREAMS)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            url = f"{server.base_url}/v1/chat/completions"
            # Open every connection first: TCP set-up is not part of the server's TTFT.
            await asyncio.gather(*(client.post(url, json=chat(False, 1)) for _ in range(STREAMS)))
            return await asyncio.gather(*(one_stream(client, url) for _ in range(STREAMS)))

    results = asyncio.run(run())
    ttfts = sorted(ttft for ttft, _ in results)
    gaps = sorted(gap for _, stream_gaps in results for gap in stream_gaps)
    p99_gap = gaps[int(len(gaps) * 0.99)]
    median_ttft = statistics.median(ttfts)
    print(
        f"TTFT median {median_ttft * 1000:.1f} ms max {ttfts[-1] * 1000:.1f} ms; "
        f"gap median {statistics.median(gaps) * 1000:.2f} ms p99 {p99_gap * 1000:.2f} ms"
    )
    assert abs(median_ttft - TTFT) <= 0.010, f"median TTFT {median_ttft * 1000:.1f} ms"
    assert abs(p99_gap - ITL) <= 0.005, f"p99 inter-token gap {p99_gap * 1000:.2f} ms"
    assert abs(statistics.median(gaps) - ITL) <= 0.002


def test_non_stream_answer_arrives_after_ttft_plus_n_minus_one_itl_LAT_7(
    server: RunningServer,
) -> None:
    n = 10
    with httpx.Client(timeout=10) as client:
        client.get(f"{server.base_url}/health")
        for _ in range(3):
            start = time.perf_counter()
            response = client.post(f"{server.base_url}/v1/chat/completions", json=chat(False, n))
            elapsed = time.perf_counter() - start
            assert response.json()["usage"]["completion_tokens"] == n
            assert abs(elapsed - (TTFT + (n - 1) * ITL)) <= 0.020, f"{elapsed * 1000:.1f} ms"


def test_requests_beyond_max_num_seqs_wait_for_a_slot_SCHED_1(
    server_factory: ServerFactory,
) -> None:
    queued = server_factory(
        "version: 1\nmodel: {name: q}\nengine: {max-num-seqs: 2}\n"
        "latency: {time-to-first-token: 100ms, inter-token-latency: 10ms}\n"
    )
    duration = 0.100 + 4 * 0.010  # TTFT + (5 - 1) ITL per request

    async def timed(client: httpx.AsyncClient) -> float:
        start = time.perf_counter()
        response = await client.post(
            f"{queued.base_url}/v1/completions",
            json={"model": "q", "prompt": "x", "max_tokens": 5, "ignore_eos": True},
        )
        assert response.status_code == 200
        return time.perf_counter() - start

    async def run() -> list[float]:
        async with httpx.AsyncClient(timeout=10) as client:
            return sorted(await asyncio.gather(*(timed(client) for _ in range(6))))

    times = asyncio.run(run())
    for index, elapsed in enumerate(times):
        expected = duration * (index // 2 + 1)
        assert abs(elapsed - expected) <= 0.030, (index, times)
