"""A client that goes away frees its running slot or its queue place at once."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.metrics_support import scrape, value
from tests.support import RunningServer

TTFT = 0.050
ITL = 0.050
SCENARIO = f"""
version: 1
model: {{name: d}}
engine: {{max-num-seqs: 1}}
latency: {{time-to-first-token: {int(TTFT * 1000)}ms, inter-token-latency: {int(ITL * 1000)}ms}}
rules:
  - when: {{prompt-matches: stall}}
    stream: {{stall-after-tokens: 2, stall: 30s}}
"""
LONG = {"model": "d", "prompt": "x", "max_tokens": 200, "ignore_eos": True}
SHORT = {"model": "d", "prompt": "x", "max_tokens": 1}


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


async def short_request_time(client: httpx.AsyncClient) -> float:
    start = time.perf_counter()
    response = await client.post("/v1/completions", json=SHORT)
    assert response.status_code == 200
    return time.perf_counter() - start


def test_stream_abandoned_mid_way_frees_its_slot(server: RunningServer) -> None:
    async def run() -> float:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            async with client.stream("POST", "/v1/completions", json={**LONG, "stream": True}) as r:
                lines = r.aiter_lines()
                for _ in range(3):
                    await anext(lines)
            # The 200-token stream would hold the only slot for 10 s; it was abandoned.
            return await short_request_time(client)

    assert asyncio.run(run()) < TTFT + 0.5


def test_non_stream_request_abandoned_while_running_frees_its_slot(server: RunningServer) -> None:
    async def run() -> float:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            long = asyncio.create_task(client.post("/v1/completions", json=LONG))
            await asyncio.sleep(0.2)
            long.cancel()
            with pytest.raises(asyncio.CancelledError):
                await long
            return await short_request_time(client)

    assert asyncio.run(run()) < TTFT + 0.5


def test_request_abandoned_in_the_queue_leaves_it(server: RunningServer) -> None:
    async def run() -> float:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            running = asyncio.create_task(client.post("/v1/completions", json=LONG))
            await asyncio.sleep(0.1)
            queued = asyncio.create_task(client.post("/v1/completions", json=LONG))
            await asyncio.sleep(0.1)
            queued.cancel()
            running.cancel()
            for task in (queued, running):
                with pytest.raises(asyncio.CancelledError):
                    await task
            # Had the queued request stayed, it would now hold the slot for 10 s.
            return await short_request_time(client)

    assert asyncio.run(run()) < TTFT + 0.5


def test_stream_abandoned_during_a_stall_frees_its_slot_and_counts_as_aborted(
    server: RunningServer,
) -> None:
    def aborted() -> float:
        return value(scrape(server), "vllm:request_success", "_total", finished_reason="abort")

    before = aborted()

    async def run() -> float:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            stalled = {**LONG, "prompt": "stall", "stream": True}
            async with client.stream("POST", "/v1/completions", json=stalled) as r:
                lines = r.aiter_lines()
                for _ in range(4):  # two token chunks and their blank lines: now it stalls
                    await anext(lines)
            # The stall would hold the only slot for 30 s; the client left during it.
            return await short_request_time(client)

    assert asyncio.run(run()) < TTFT + 0.5
    assert aborted() == before + 1
