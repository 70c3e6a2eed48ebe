"""Under overload the server stays responsive: with 2000 streams open (1000 running, 1000
waiting) `/health` answers within 50 ms, and a request beyond the full queue is rejected with
upstream's 429 at once, not after a wait."""

from __future__ import annotations

import asyncio
import json
import resource
import time

import httpx
import pytest

from tests.conftest import ServerFactory

pytestmark = pytest.mark.usefixtures("steady_gc")

RUNNING = 1000
WAITING = 1000
ITL = 0.05
SCENARIO = f"""
version: 1
model: {{name: m}}
engine: {{max-num-seqs: {RUNNING}, max-waiting-queue-length: {WAITING}}}
latency: {{time-to-first-token: 10ms, inter-token-latency: {int(ITL * 1000)}ms}}
"""
BODY = json.dumps(
    {"model": "m", "prompt": "x", "max_tokens": 400, "ignore_eos": True, "stream": True}
).encode()
REQUEST = (
    b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
)
RESPONSIVE = 0.050


async def open_stream(port: int, opened: asyncio.Event, count: list[int]) -> None:
    """A streamed request whose tokens are read (and dropped) until it is cancelled."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    try:
        count[0] += 1
        if count[0] == RUNNING + WAITING:
            opened.set()
        while await reader.read(65536):
            pass
    finally:
        writer.transport.abort()


def test_health_answers_fast_and_a_full_queue_rejects_at_once_with_2000_streams_open(
    server_factory: ServerFactory,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 16384)), hard))
    server = server_factory(SCENARIO)

    async def run() -> tuple[list[float], float, int, dict[str, float]]:
        opened, count = asyncio.Event(), [0]
        streams = []
        for _ in range(0, RUNNING + WAITING, 200):  # within the listen backlog
            streams += [
                asyncio.create_task(open_stream(server.port, opened, count)) for _ in range(200)
            ]
            await asyncio.sleep(0.02)
        await asyncio.wait_for(opened.wait(), 30)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
            gauges: dict[str, float] = {}
            for _ in range(100):  # until every request is running or waiting
                metrics = (await client.get("/metrics")).text
                gauges = {
                    line.split("{")[0]: float(line.rsplit(" ", 1)[1])
                    for line in metrics.splitlines()
                    if line.startswith(("vllm:num_requests_running", "vllm:num_requests_waiting"))
                }
                if sum(gauges.values()) == RUNNING + WAITING:
                    break
                await asyncio.sleep(0.05)
            health = []
            for _ in range(20):
                start = time.perf_counter()
                assert (await client.get("/health")).status_code == 200
                health.append(time.perf_counter() - start)
                await asyncio.sleep(ITL / 2)
            start = time.perf_counter()
            rejected = await client.post(
                "/v1/completions", json={"model": "m", "prompt": "x", "max_tokens": 1}
            )
            rejection = time.perf_counter() - start
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*streams, return_exceptions=True)
        return health, rejection, rejected.status_code, gauges

    health, rejection, status, gauges = asyncio.run(run())
    assert gauges == {
        "vllm:num_requests_running": RUNNING,
        "vllm:num_requests_waiting": WAITING,
    }
    assert status == 429
    assert rejection < RESPONSIVE, f"429 after {rejection * 1000:.1f} ms"
    print(f"health max {max(health) * 1000:.1f} ms, 429 in {rejection * 1000:.1f} ms")
    assert max(health) < RESPONSIVE, f"/health took up to {max(health) * 1000:.1f} ms"
    assert httpx.get(f"{server.base_url}/health").status_code == 200
