"""Running llmsim as it is deployed: data-parallel rank processes, HTTPS, an API key,
readiness, graceful shutdown, pod and request-id headers, the body size limit (DP-1, TLS-1,
API-HEALTH-1, PIPE-5, HDR-1, HDR-2, ERR-6)."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmsim.server.tls import self_signed_certificate
from tests.conftest import ServerFactory
from tests.kv_support import Subscriber
from tests.support import PROJECT_ROOT, free_port, free_ports

USER = [{"role": "user", "content": "Hello"}]


class Launched:
    """A ``llmsim run`` process started by a test, with its output kept in a file."""

    def __init__(self, scenario: Path, env: dict[str, str] | None = None):
        self.log = scenario.with_suffix(".log")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llmsim", "run", str(scenario)],
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("wb"),
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )

    def wait_until(
        self, url: str, verify: bool | ssl.SSLContext = True, timeout: float = 20
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(url, timeout=0.5, verify=verify).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"{url} did not answer in {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[object]:
    started: list[Launched] = []

    def start(scenario_yaml: str, env: dict[str, str] | None = None) -> Launched:
        path = tmp_path / f"scenario-{len(started)}.yaml"
        path.write_text(scenario_yaml)
        launched = Launched(path, env)
        started.append(launched)
        return launched

    yield start
    for launched in started:
        launched.stop()


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()]


def test_data_parallel_ranks_serve_their_own_ports_metrics_and_events_DP_1(launch) -> None:  # type: ignore[no-untyped-def]
    port, zmq_port = free_ports(3), free_ports(3)
    while abs(zmq_port - port) < 3:
        zmq_port = free_ports(3)
    subscribers = [Subscriber(f"tcp://127.0.0.1:{zmq_port + rank}") for rank in range(3)]
    server = launch(
        f"version: 1\nseed: 2\nmodel: {{name: m}}\n"
        f"server: {{port: {port}, data-parallel-size: 3, host: 127.0.0.1}}\n"
        f"kv-cache: {{enable-kvcache: true, event-batch-size: 1,"
        f' zmq-endpoint: "tcp://127.0.0.1:{zmq_port}"}}\n',
        env={"POD_IP": "10.0.0.7"},
    )
    try:
        for rank in range(3):
            server.wait_until(f"http://127.0.0.1:{port + rank}/health")
        for subscriber in subscribers:
            subscriber.settle(0.3)
        with httpx.Client(timeout=10) as client:
            for rank in range(3):
                for _ in range(rank + 1):
                    reply = client.post(
                        f"http://127.0.0.1:{port + rank}/v1/completions",
                        json={"model": "m", "prompt": f"rank {rank} " * 20, "max_tokens": 2},
                    )
                    assert reply.status_code == 200
            for rank in range(3):
                metrics = client.get(f"http://127.0.0.1:{port + rank}/metrics").text
                finished = sum(
                    sample.value
                    for family in text_string_to_metric_families(metrics)
                    for sample in family.samples
                    if sample.name == "vllm:request_success_total"
                )
                assert finished == rank + 1
        for rank, subscriber in enumerate(subscribers):
            assert subscriber.wait_for(1), f"no KV events from rank {rank}"
            for topic, _, batch in subscriber.batches:
                assert topic.decode() == f"kv@10.0.0.7:{port + rank}@m"
                assert batch[-1] == rank
        victim = children(server.process.pid)[1]
        os.kill(victim, signal.SIGKILL)
        assert server.process.wait(timeout=20) == 1
        assert "exited with code -9; stopping the other ranks" in server.output()
    finally:
        for subscriber in subscribers:
            subscriber.close()


def test_sigterm_lets_50_streams_finish_and_exits_0_PIPE_5(launch) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    server = launch(
        f"version: 1\nmodel: {{name: m}}\nengine: {{max-num-seqs: 64}}\n"
        f"server: {{port: {port}, host: 127.0.0.1, shutdown-timeout: 20s}}\n"
        "latency: {time-to-first-token: 100ms, inter-token-latency: 20ms}\n"
    )
    server.wait_until(f"http://127.0.0.1:{port}/health")

    async def stream(client: httpx.AsyncClient) -> str:
        payload = {"model": "m", "messages": USER, "max_tokens": 50, "ignore_eos": True,
                   "stream": True}  # fmt: skip
        async with client.stream("POST", "/v1/chat/completions", json=payload) as response:
            return (await response.aread()).decode()

    async def run() -> list[str]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits
        ) as client:
            tasks = [asyncio.create_task(stream(client)) for _ in range(50)]
            await asyncio.sleep(0.4)  # every stream is running: TTFT 100 ms, 50 x 20 ms
            server.process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*tasks)

    bodies = asyncio.run(run())
    assert all(body.endswith("data: [DONE]\n\n") and body.count("data: ") == 53 for body in bodies)
    assert server.process.wait(timeout=20) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)


def test_https_with_a_self_signed_certificate_TLS_1(launch) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    server = launch(
        f"version: 1\nmodel: {{name: m}}\n"
        f"server: {{port: {port}, host: 127.0.0.1, self-signed-certs: true}}\n"
    )
    server.wait_until(f"https://127.0.0.1:{port}/health", verify=False)
    assert "self-signed certificate written to" in server.output()
    with openai.OpenAI(
        base_url=f"https://127.0.0.1:{port}/v1", api_key="x",
        http_client=httpx.Client(verify=False),
    ) as client:  # fmt: skip
        answer = client.chat.completions.create(model="m", messages=USER, max_tokens=3)  # type: ignore[arg-type]
    assert answer.choices[0].message.content
    pem = ssl.get_server_certificate(("127.0.0.1", port))
    authority = ssl.create_default_context(cadata=pem)
    with openai.OpenAI(
        base_url=f"https://127.0.0.1:{port}/v1", api_key="x",
        http_client=httpx.Client(verify=authority),
    ) as client:  # fmt: skip
        assert client.models.list().data[0].id == "m"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"https://127.0.0.1:{port}/health")  # not a trusted authority by default


def test_https_with_certificate_files_used_as_ca_TLS_1(launch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cert, key = self_signed_certificate(tmp_path, ["localhost", "127.0.0.1"])
    port = free_port()
    server = launch(
        f"version: 1\nmodel: {{name: m}}\nserver: {{port: {port}, host: 127.0.0.1,"
        f" ssl-certfile: {cert}, ssl-keyfile: {key}}}\n"
    )
    authority = ssl.create_default_context(cafile=str(cert))
    server.wait_until(f"https://localhost:{port}/health", verify=authority)
    with openai.OpenAI(
        base_url=f"https://localhost:{port}/v1", api_key="x",
        http_client=httpx.Client(verify=authority),
    ) as client:  # fmt: skip
        answer = client.completions.create(model="m", prompt="Hi", max_tokens=2)
    assert answer.choices[0].text


def test_missing_certificate_file_is_a_clear_startup_error(launch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = launch(
        f"version: 1\nserver: {{port: {free_port()}, ssl-certfile: {tmp_path}/no.pem,"
        f" ssl-keyfile: {tmp_path}/no.key}}\n"
    )
    assert server.process.wait(timeout=20) == 1
    assert "TLS file not found" in server.output()


def test_api_key_guards_v1_only(server_factory: ServerFactory) -> None:
    server = server_factory("version: 1\nmodel: {name: m}\nserver: {api-key: s3cret}\n")
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        denied = client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
        assert denied.status_code == 401
        assert denied.json()["error"]["type"] == "AuthenticationError"
        assert client.get("/v1/models").status_code == 401
        wrong = client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        for open_path in ("/health", "/health/ready", "/metrics"):
            assert client.get(open_path).status_code == 200
        assert client.get("/admin/config").json()["api-key"] == "<redacted>"
        anthropic_denied = client.post(
            "/v1/messages", json={"model": "m", "max_tokens": 2, "messages": USER}
        )
        assert anthropic_denied.json()["error"]["type"] == "authentication_error"
    with openai.OpenAI(base_url=server.openai_base_url, api_key="s3cret") as client:
        assert client.chat.completions.create(model="m", messages=USER, max_tokens=2).choices  # type: ignore[arg-type]
    with (
        openai.OpenAI(base_url=server.openai_base_url, api_key="bad") as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.models.list()
    with anthropic.Anthropic(base_url=server.base_url, api_key="s3cret") as client:
        assert client.messages.create(model="m", max_tokens=2, messages=USER).content  # type: ignore[arg-type]


def test_readiness_waits_for_startup_duration_API_HEALTH_1(server_factory: ServerFactory) -> None:
    server = server_factory("version: 1\nserver: {startup-duration: 1500ms}\n")
    with httpx.Client(base_url=server.base_url, timeout=5) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/health/ready").status_code == 503
        deadline = time.monotonic() + 5
        while client.get("/health/ready").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_pod_and_request_id_headers_HDR_1_HDR_2(server_factory: ServerFactory) -> None:
    server = server_factory(
        "version: 1\nmodel: {name: m}\nserver: {enable-request-id-headers: true}\n",
        env={"POD_NAME": "sim-0", "POD_NAMESPACE": "team"},
    )
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        chat = client.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": USER},
            headers={"X-Request-Id": "req-42"},
        )
        assert chat.headers["x-inference-pod"] == "sim-0"
        assert chat.headers["x-inference-namespace"] == "team"
        assert chat.headers["x-inference-port"] == str(server.port)
        assert chat.headers["x-request-id"] == "req-42"
        assert chat.json()["id"] == "chatcmpl-req-42"
        # A whole answer carries its length, as vLLM's; a stream is chunked.
        assert chat.headers["content-length"] == str(len(chat.content))
        failed = client.post("/v1/chat/completions", json={"model": "nope", "messages": USER})
        assert failed.status_code == 404
        assert failed.headers["content-length"] == str(len(failed.content))
        streamed = client.post(
            "/v1/completions", json={"model": "m", "prompt": "Hi", "stream": True}
        )
        assert streamed.headers["x-inference-pod"] == "sim-0"
        assert streamed.headers["x-request-id"]  # generated when none is sent
        assert streamed.headers["transfer-encoding"] == "chunked"
        embedded = client.post("/v1/embeddings", json={"model": "m", "input": "Hi"})
        assert embedded.headers["x-inference-pod"] == "sim-0"
        assert embedded.headers["x-request-id"]
        error = client.post("/v1/chat/completions", json={"model": "other", "messages": USER})
        assert error.status_code == 404 and "x-inference-pod" not in error.headers
        assert "x-inference-pod" not in client.get("/v1/models").headers


def test_request_id_header_is_ignored_unless_enabled_HDR_2(server_factory: ServerFactory) -> None:
    server = server_factory("version: 1\nmodel: {name: m}\n")
    reply = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={"model": "m", "messages": USER},
        headers={"X-Request-Id": "req-42"},
        timeout=10,
    )
    assert "x-request-id" not in reply.headers and "req-42" not in reply.json()["id"]


def test_body_size_limit_is_413_ERR_6(server_factory: ServerFactory) -> None:
    server = server_factory("version: 1\nmodel: {name: m}\nserver: {max-request-body-size-mb: 1}\n")
    big = {"model": "m", "prompt": "x " * 600_000}
    reply = httpx.post(f"{server.base_url}/v1/completions", json=big, timeout=10)
    assert reply.status_code == 413
    assert "1 MB" in reply.json()["error"]["message"]
