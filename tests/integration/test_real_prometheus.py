"""A real Prometheus scrapes llmsim and answers PromQL over vLLM's metric names.

Needs the ``prometheus`` binary (Debian package ``prometheus``; ``.ci/run`` installs it). Skipped
with a reason when it is absent, so a clone without it still passes ``make test``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support import RunningServer, run_prometheus

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus binary is not installed (apt-get install prometheus)"
)


@pytest.fixture(scope="module")
def simulator(server_factory: ServerFactory) -> RunningServer:
    return server_factory(
        "version: 1\nmodel: {name: prom-model}\n"
        "latency: {time-to-first-token: 30ms, inter-token-latency: 5ms}\n"
    )


@pytest.fixture(scope="module")
def prometheus(simulator: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("prometheus")
    config = folder / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: llmsim\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{simulator.port}']}}]\n"
    )
    assert PROMETHEUS is not None
    with run_prometheus(PROMETHEUS, config, folder) as url:
        yield url


def query(prometheus: str, promql: str, expect: float | None = None, timeout: float = 20) -> float:
    """The scalar result of ``promql``, polled until Prometheus has it (and equals ``expect``)."""
    deadline = time.monotonic() + timeout
    last: float | None = None
    while time.monotonic() < deadline:
        body = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}).json()
        assert body["status"] == "success", body
        result = body["data"]["result"]
        if result:
            last = float(result[0]["value"][1])
            if expect is None or last == expect:
                return last
        time.sleep(0.3)
    raise AssertionError(f"{promql}: got {last}, expected {expect}")


def test_prometheus_scrapes_and_queries_vllm_metrics(
    simulator: RunningServer, prometheus: str
) -> None:
    assert query(prometheus, 'up{job="llmsim"}', expect=1.0) == 1.0
    with httpx.Client(base_url=simulator.base_url, timeout=10) as client:
        for _ in range(10):
            client.post(
                "/v1/completions",
                json={"model": "prom-model", "prompt": "x", "max_tokens": 5, "ignore_eos": True},
            )
    assert query(prometheus, "vllm:generation_tokens_total", expect=50.0) == 50.0
    assert query(prometheus, 'vllm:request_success_total{finished_reason="length"}', 10.0) == 10
    p50 = query(
        prometheus,
        "histogram_quantile(0.5, sum by (le) (vllm:time_to_first_token_seconds_bucket))",
    )
    assert 0.02 <= p50 <= 0.04
    assert query(prometheus, 'vllm:num_requests_running{model_name="prom-model"}') == 0.0
