"""vLLM's HTTP request counter on a running server: ``http_requests_total{handler, method,
status}`` (docs/metrics.md).

Every request counts once by its route template ("none" for a path no route matches), its
method and its status grouped as ``2xx``/``4xx``/``5xx``: answers, validation errors, unknown
models and paths, wrong methods, rule errors, injected failures, and the 429 of a full queue.
vLLM's excluded handlers (``/metrics``, ``/health`` …) and a 401 for a missing API key are not
counted. Each data-parallel rank counts its own requests. One test drives the ASGI app in
process: the frames of a stream do not pass through the counter.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmsim.plan.compile import compile_scenario
from llmsim.scenario.loader import load_scenario_text
from llmsim.server.app import create_app
from llmsim.server.connection import Message
from llmsim.server.http_metrics import CountedSend
from tests.conftest import ServerFactory
from tests.support import PROJECT_ROOT, RunningServer, free_ports

MODEL = "http-model"
CHAT = "/v1/chat/completions"
USER = [{"role": "user", "content": "Hello"}]
SCENARIO = f"""\
version: 1
model: {{name: {MODEL}}}
engine: {{max-num-seqs: 1, max-waiting-queue-length: 0}}
latency: {{time-to-first-token: 0ms, inter-token-latency: 0ms}}
rules:
  - name: slow
    when: {{header: {{X-Case: slow}}}}
    latency: {{time-to-first-token: 1500ms}}
  - name: broken
    when: {{header: {{X-Case: broken}}}}
    error: server_error
"""

Counts = dict[tuple[str, str, str], float]


def http_requests(base_url: str) -> Counts:
    """``(handler, method, status) -> value`` of every ``http_requests_total`` sample."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    counts: Counts = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                labels = sample.labels
                assert set(labels) == {"handler", "method", "status"}, labels
                counts[(labels["handler"], labels["method"], labels["status"])] = sample.value
            assert not sample.name.startswith("http_requests_created"), sample
    return counts


def chat(client: httpx.Client, case: str | None = None, **body: object) -> httpx.Response:
    headers = {"X-Case": case} if case else {}
    payload = {"model": MODEL, "messages": USER, "max_tokens": 3, **body}
    return client.post(CHAT, json=payload, headers=headers)


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


def test_every_request_counts_by_route_method_and_grouped_status(server: RunningServer) -> None:
    assert http_requests(server.base_url) == {}  # series appear with their first request
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        # 200s: answered, streamed, and a FastAPI route.
        assert chat(client).status_code == 200
        assert chat(client, stream=True).status_code == 200
        assert client.get("/v1/models").status_code == 200
        # 4xx: a 400, an unknown model (404), an unknown path (404), a wrong method (405).
        assert client.post(CHAT, json={"model": MODEL, "messages": []}).status_code == 400
        assert chat(client, model="no-such-model").status_code == 404
        assert client.get("/no/such/path").status_code == 404
        assert client.get(CHAT).status_code == 405
        assert client.get("/tokenize").status_code == 405
        # 5xx from a rule's error, 429s injected by failure-injection-rate.
        assert chat(client, "broken").status_code == 503
        update = {"failure-injection-rate": 100, "failure-types": ["rate_limit"]}
        assert client.post("/admin/config", json=update).status_code == 200
        assert [chat(client).status_code for _ in range(2)] == [429, 429]
        assert client.post("/admin/config", json={"failure-injection-rate": 0}).status_code == 200
        # A 429 because the one slot is taken and there is no queue.
        slow: list[int] = []
        holder = threading.Thread(target=lambda: slow.append(chat(client, "slow").status_code))
        holder.start()
        wait_until_running(client)
        assert chat(client).status_code == 429
        holder.join()
        assert slow == [200]
        # Not counted: vLLM's excluded handlers (regular expressions searched in the handler).
        for path in ("/health", "/health/ready", "/metrics", "/healthz"):
            client.get(path)
        client.post("/v1/load_lora_adapter", json={"lora_name": "a", "lora_path": "/a"})

    assert http_requests(server.base_url) == {
        (CHAT, "POST", "2xx"): 3,
        (CHAT, "POST", "4xx"): 5,
        (CHAT, "POST", "5xx"): 1,
        (CHAT, "GET", "4xx"): 1,
        ("/v1/models", "GET", "2xx"): 1,
        ("/tokenize", "GET", "4xx"): 1,
        ("none", "GET", "4xx"): 1,
        ("/admin/config", "POST", "2xx"): 2,
    }


def wait_until_running(client: httpx.Client, timeout: float = 5) -> None:
    """Until the engine runs a request (read from ``/metrics``, which counts nothing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for family in text_string_to_metric_families(client.get("/metrics").text):
            if family.name == "vllm:num_requests_running" and family.samples[0].value >= 1:
                return
        time.sleep(0.02)
    raise AssertionError("the slow request never ran")


def test_a_client_that_leaves_before_the_status_line_counts_as_2xx(
    server_factory: ServerFactory,
) -> None:
    """vLLM has sent a stream's status line when the first token is still ahead; llmsim sends
    it with the first token, and counts a client that left before as vLLM does."""
    server = server_factory(SCENARIO)
    with (
        httpx.Client(base_url=server.base_url, timeout=0.3) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        chat(client, "slow", stream=True)
    deadline = time.monotonic() + 5
    while http_requests(server.base_url) == {} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert http_requests(server.base_url) == {(CHAT, "POST", "2xx"): 1}


def test_a_request_without_the_api_key_is_not_counted(server_factory: ServerFactory) -> None:
    """vLLM checks ``--api-key`` in a middleware outside its request counter."""
    server = server_factory(f"{SCENARIO}server: {{api-key: secret}}\n")
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert chat(client).status_code == 401
        assert client.get("/v1/models").status_code == 401
        client.headers["Authorization"] = "Bearer secret"
        assert chat(client).status_code == 200
    assert http_requests(server.base_url) == {(CHAT, "POST", "2xx"): 1}


def test_fake_metrics_leave_the_request_counter_real(server_factory: ServerFactory) -> None:
    server = server_factory(
        f"version: 1\nmodel: {{name: {MODEL}}}\n"
        "metrics: {fake-metrics: {running-requests: 7}}\n"
    )
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        assert chat(client).status_code == 200
        assert chat(client, model="other").status_code == 404
    assert http_requests(server.base_url) == {(CHAT, "POST", "2xx"): 1, (CHAT, "POST", "4xx"): 1}


@pytest.fixture
def two_ranks(tmp_path: Path) -> Iterator[int]:
    """``llmsim run`` with two data-parallel ranks: the first rank's port."""
    port = free_ports(2)
    scenario = tmp_path / "ranks.yaml"
    scenario.write_text(
        f"version: 1\nmodel: {{name: {MODEL}}}\n"
        f"server: {{port: {port}, data-parallel-size: 2, host: 127.0.0.1}}\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "llmsim", "run", str(scenario)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        for rank in range(2):
            wait_for_health(f"http://127.0.0.1:{port + rank}/health", process)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_health(url: str, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"llmsim exited with {process.returncode}"
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer in {timeout} s")


def test_each_data_parallel_rank_counts_its_own_requests(two_ranks: int) -> None:
    with httpx.Client(timeout=10) as client:
        for rank, count in ((0, 2), (1, 1)):
            client.base_url = httpx.URL(f"http://127.0.0.1:{two_ranks + rank}")
            for _ in range(count):
                assert chat(client).status_code == 200
        client.base_url = httpx.URL(f"http://127.0.0.1:{two_ranks + 1}")
        assert chat(client, model="other").status_code == 404
    assert http_requests(f"http://127.0.0.1:{two_ranks}") == {(CHAT, "POST", "2xx"): 2}
    assert http_requests(f"http://127.0.0.1:{two_ranks + 1}") == {
        (CHAT, "POST", "2xx"): 1,
        (CHAT, "POST", "4xx"): 1,
    }


def test_stream_frames_bypass_the_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lean route's connection takes the server's ``send`` out of the counter's: the
    counter sees the status line only, and a token costs nothing more."""
    through_counter: list[str] = []
    wrapped = CountedSend.__call__

    async def spy(self: CountedSend, message: Message) -> None:
        through_counter.append(message["type"])
        await wrapped(self, message)

    monkeypatch.setattr(CountedSend, "__call__", spy)
    plan = compile_scenario(load_scenario_text(SCENARIO, "http.yaml"))
    app = create_app(plan, environ={})
    body = {"model": MODEL, "messages": USER, "max_tokens": 20, "ignore_eos": True, "stream": True}
    sent: list[Message] = []

    async def exchange() -> None:
        requested = False

        async def receive() -> Message:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": orjson.dumps(body), "more_body": False}
            await asyncio.Event().wait()  # the client stays
            raise AssertionError

        async def send(message: Message) -> None:
            sent.append(message)

        await app.simulator.startup()
        scope = {"type": "http", "method": "POST", "path": CHAT, "headers": []}
        await app(scope, receive, send)
        await app.simulator.shutdown()

    asyncio.run(exchange())
    frames = [m for m in sent if m["type"] == "http.response.body"]
    assert sent[0]["type"] == "http.response.start" and len(frames) >= 20
    assert through_counter == []
    assert app.simulator.http_requests.totals == {("POST", "2xx", CHAT): 1}
