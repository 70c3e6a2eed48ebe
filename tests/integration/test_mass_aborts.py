"""500 streams abandoned at random points — queued, before the first token, mid-stream — leave
nothing behind: no running or waiting request, no task beyond the server's own, and every
request counted once, as finished or as aborted.

The server runs in this process (uvicorn on a loopback port, in a thread with its own event
loop), so that its tasks can be listed; the clients are raw sockets in the test's loop.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from llmsim.plan.compile import compile_scenario
from llmsim.scenario.loader import load_scenario_text
from llmsim.server.app import create_app
from tests.support import free_port

STREAMS = 500
SLOTS = 200
TTFT = 0.05
ITL = 0.01
TOKENS = 100
SCENARIO = f"""
version: 1
seed: 7
model: {{name: m}}
engine: {{max-num-seqs: {SLOTS}, max-waiting-queue-length: {STREAMS}}}
latency: {{time-to-first-token: {int(TTFT * 1000)}ms, inter-token-latency: {int(ITL * 1000)}ms}}
"""
SETTLE = 5.0
"""Seconds the server may take to wind every abandoned request down."""


class ThreadServer(uvicorn.Server):
    """uvicorn in a thread; remembers its event loop once serving."""

    loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[tuple[ThreadServer, str]]:
    app = create_app(compile_scenario(load_scenario_text(SCENARIO, "aborts.yaml")), environ={})
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http="httptools", log_level="warning", lifespan="on"
    )
    served = ThreadServer(config)
    thread = threading.Thread(target=served.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not served.started:
        assert time.monotonic() < deadline, "the in-process server did not start"
        time.sleep(0.01)
    yield served, f"http://127.0.0.1:{port}"
    served.should_exit = True
    thread.join(timeout=10)


def server_tasks(served: ThreadServer) -> set[str]:
    """The names of the coroutines of every task pending in the server's loop."""

    async def listing() -> set[str]:
        return {
            f"{task.get_coro().__qualname__}#{id(task)}"  # type: ignore[union-attr]
            for task in asyncio.all_tasks()
            if task is not asyncio.current_task()
        }

    assert served.loop is not None
    return asyncio.run_coroutine_threadsafe(listing(), served.loop).result(timeout=10)


def gauges_and_outcomes(base_url: str) -> tuple[float, float, float, float]:
    """Running and waiting requests, every finished or aborted request counted so far, and
    the aborted ones among them."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    running = waiting = ended = aborted = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "vllm:num_requests_running":
                running += sample.value
            elif sample.name == "vllm:num_requests_waiting":
                waiting += sample.value
            elif sample.name == "vllm:request_success_total":
                ended += sample.value
                if sample.labels.get("finished_reason") == "abort":
                    aborted += sample.value
    return running, waiting, ended, aborted


async def abandoned_stream(port: int, leave_after: float) -> bool:
    """One streamed request whose client hangs up after ``leave_after`` seconds (True when
    the answer was complete by then)."""
    body = json.dumps(
        {"model": "m", "prompt": "x", "max_tokens": TOKENS, "ignore_eos": True, "stream": True}
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    received = b""
    try:
        async with asyncio.timeout(leave_after):
            while not received.endswith(b"0\r\n\r\n"):
                chunk = await reader.read(65536)
                if not chunk:
                    break
                received += chunk
    except TimeoutError:
        pass
    writer.transport.abort()  # a reset, as a client that dies would leave
    return received.endswith(b"0\r\n\r\n")


def test_500_streams_abandoned_at_random_points_leave_nothing_behind(
    server: tuple[ThreadServer, str],
) -> None:
    served, base_url = server
    port = int(base_url.rsplit(":", 1)[1])
    assert httpx.get(f"{base_url}/health").status_code == 200
    own = server_tasks(served)
    _, _, ended_before, aborted_before = gauges_and_outcomes(base_url)
    whole = TTFT + TOKENS * ITL
    # Leave while queued (the first 200 hold every slot for >= 1 s), before the first token,
    # mid-stream, and a few after the end.
    chances = random.Random(13)
    leave_after = [chances.uniform(0.0, 1.2 * whole) for _ in range(STREAMS)]

    async def run() -> list[bool]:
        return await asyncio.gather(*(abandoned_stream(port, t) for t in leave_after))

    completed = asyncio.run(run())
    assert sum(completed) < STREAMS / 2  # most were abandoned

    deadline = time.monotonic() + SETTLE
    while True:
        running, waiting, ended, aborted = gauges_and_outcomes(base_url)
        left = server_tasks(served) - own
        settled = running == 0 and waiting == 0 and ended - ended_before == STREAMS and not left
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (running, waiting) == (0, 0)
    assert ended - ended_before == STREAMS  # each request counted once, finished or aborted
    # Every client that left early is an abort (a few may leave just as their answer ends).
    assert abs((aborted - aborted_before) - (STREAMS - sum(completed))) <= 5
    assert not left, f"tasks left behind: {sorted(left)[:10]}"
