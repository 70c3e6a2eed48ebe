"""Running slots and the waiting queue as a client and a scrape see them (SCHED-1, SCHED-4)."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.conftest import ServerFactory
from tests.metrics_support import scrape, value
from tests.support import drain_stream

TTFT = 0.100
ITL = 0.020
TOKENS = 6


def test_two_run_four_wait_and_ttft_grows_by_whole_requests_SCHED_1_SCHED_4(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        "version: 1\nmodel: {name: m}\nengine: {max-num-seqs: 2}\n"
        f"latency: {{time-to-first-token: {int(TTFT * 1000)}ms, "
        f"inter-token-latency: {int(ITL * 1000)}ms}}\n"
    )
    duration = TTFT + (TOKENS - 1) * ITL

    async def run() -> tuple[list[float], float, float]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            payload = {
                "model": "m",
                "prompt": "x",
                "max_tokens": TOKENS,
                "ignore_eos": True,
                "stream": True,
            }

            async def first_token() -> float:
                start = time.perf_counter()
                ttft = None
                async with client.stream("POST", "/v1/completions", json=payload) as response:
                    async for line in response.aiter_lines():
                        if ttft is None and line.startswith("data: {"):
                            ttft = time.perf_counter() - start
                assert ttft is not None
                return ttft

            await asyncio.gather(*(client.get("/health") for _ in range(6)))
            tasks = [asyncio.create_task(first_token()) for _ in range(6)]
            await asyncio.sleep(TTFT / 2)
            families = await asyncio.to_thread(scrape, server)
            ttfts = sorted(await asyncio.gather(*tasks))
            return (
                ttfts,
                value(families, "vllm:num_requests_running"),
                value(families, "vllm:num_requests_waiting"),
            )

    ttfts, running, waiting = asyncio.run(run())
    assert (running, waiting) == (2, 4)
    for index, ttft in enumerate(ttfts):
        expected = TTFT + (index // 2) * duration
        assert abs(ttft - expected) <= 0.030, (index, ttfts)


def test_100_abandoned_streams_leave_nothing_running_or_waiting(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        "version: 1\nmodel: {name: m}\nengine: {max-num-seqs: 40}\n"
        "latency: {time-to-first-token: 20ms, inter-token-latency: 20ms}\n"
    )

    async def run() -> None:
        limits = httpx.Limits(max_connections=120)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=limits) as client:
            payload = {
                "model": "m",
                "prompt": "x",
                "max_tokens": 500,
                "ignore_eos": True,
                "stream": True,
            }

            tasks = [
                asyncio.create_task(drain_stream(client, "/v1/completions", payload))
                for _ in range(100)
            ]
            await asyncio.sleep(0.3)
            families = await asyncio.to_thread(scrape, server)
            assert value(families, "vllm:num_requests_running") == 40
            assert value(families, "vllm:num_requests_waiting") == 60
            # Abandon them all: 40 mid-stream, 60 still queued.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        families = scrape(server)
        if value(families, "vllm:num_requests_running") == 0:
            break
        time.sleep(0.05)
    assert value(families, "vllm:num_requests_running") == 0
    assert value(families, "vllm:num_requests_waiting") == 0
    assert value(families, "vllm:request_success", "_total", finished_reason="abort") == 100
    assert value(families, "vllm:request_success", "_total", finished_reason="length") == 0


def test_freed_slots_go_to_waiters_in_arrival_order_SCHED_2(server_factory: ServerFactory) -> None:
    server = server_factory(
        "version: 1\nmodel: {name: m}\nengine: {max-num-seqs: 1}\n"
        "latency: {time-to-first-token: 40ms}\n"
    )

    async def run() -> list[int]:
        finished: list[int] = []
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            await asyncio.gather(*(client.get("/health") for _ in range(6)))

            async def request(index: int) -> None:
                await asyncio.sleep(index * 0.005)
                response = await client.post(
                    "/v1/completions", json={"model": "m", "prompt": f"r{index}", "max_tokens": 1}
                )
                assert response.status_code == 200
                finished.append(index)

            await asyncio.gather(*(request(i) for i in range(6)))
        return finished

    assert asyncio.run(run()) == [0, 1, 2, 3, 4, 5]
