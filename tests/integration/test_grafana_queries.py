"""Every query of the Grafana dashboard, run by a real Prometheus against a live llmsim.

Prometheus runs with ``manifests/prometheus/prometheus.yml`` (its target pointed at the test's
llmsim, scraped every second). After some traffic — to the base model and to a LoRA adapter,
with the prefix cache on and a phase active, and errors (an unknown model's 404, rules' 429
and 503) for the HTTP error panels — every panel query answers without an error and with data,
as does the phase annotation and the ``model_name`` variable's lookup. Needs the
``prometheus`` binary, like test_real_prometheus.py; skipped with a reason without it.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML

from tests.conftest import ServerFactory
from tests.support import PROJECT_ROOT, RunningServer, run_prometheus

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="the prometheus binary is not installed (apt-get install prometheus)"
)

DASHBOARD = PROJECT_ROOT / "manifests" / "grafana" / "llmsim-vllm.json"
SCRAPE_CONFIG = PROJECT_ROOT / "manifests" / "prometheus" / "prometheus.yml"
MODEL = "grafana-model"
RATE_INTERVAL = "15s"
SCENARIO = f"""\
version: 1
model: {{name: {MODEL}}}
latency: {{time-to-first-token: 20ms, inter-token-latency: 2ms}}
lora:
  max-loras: 1
  lora-modules: [{{name: sql-lora, path: /adapters/sql}}]
kv-cache: {{enable-kvcache: true, zmq-endpoint: ""}}
phases:
  - {{name: steady, start: 0s, latency: {{time-to-first-token: 10ms}}}}
rules:
  - {{name: throttled, when: {{header: {{X-Case: throttle}}}}, error: rate_limit}}
  - {{name: broken, when: {{header: {{X-Case: broken}}}}, error: server_error}}
"""
ERRORS = ({"X-Case": "throttle"}, 429), ({"X-Case": "broken"}, 503), ({}, 404)
"""Headers of a failing request and its status (no header: the request names no such model)."""


@pytest.fixture(scope="module")
def simulator(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


@pytest.fixture(scope="module")
def prometheus(simulator: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("prometheus")
    config: dict[str, Any] = YAML(typ="safe").load(SCRAPE_CONFIG.read_text(encoding="utf-8"))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    (job,) = config["scrape_configs"]
    job.update(scrape_interval="1s", scrape_timeout="1s")
    job["static_configs"] = [{"targets": [f"127.0.0.1:{simulator.port}"]}]
    path = folder / "prometheus.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    assert PROMETHEUS is not None
    with run_prometheus(PROMETHEUS, path, folder) as url:
        yield url


def promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced, as Grafana would send it."""
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$model_name", MODEL)


def query_range(prometheus: str, expr: str) -> list[Any]:
    """The series of ``expr`` over the last 20 s; a query error fails the test."""
    now = time.time()
    params: dict[str, str | float] = {"query": expr, "start": now - 20, "end": now, "step": "1s"}
    body = httpx.get(f"{prometheus}/api/v1/query_range", params=params, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    assert body.get("warnings") is None, (expr, body["warnings"])
    result: list[Any] = body["data"]["result"]
    return result


def wait_for(prometheus: str, expr: str, timeout: float = 30) -> None:
    """Wait until ``expr`` has a sample at the newest step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
        if body["status"] == "success" and body["data"]["result"]:
            return
        time.sleep(0.3)
    raise AssertionError(f"{expr}: still empty after {timeout} s")


def test_every_dashboard_query_runs_in_prometheus(
    simulator: RunningServer, prometheus: str
) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    wait_for(prometheus, 'up{job="llmsim"} == 1')
    with httpx.Client(base_url=simulator.base_url, timeout=10) as client:
        for model in (MODEL, "sql-lora") * 4:
            response = client.post(
                "/v1/completions",
                json={"model": model, "prompt": "the same prompt " * 20, "max_tokens": 5},
            )
            assert response.status_code == 200, response.text
        # A series appears with its first request, as in vLLM: errors before and after its
        # first scrape, so that the rate sees them grow.
        for batch in range(2):
            for headers, status in ERRORS:
                model = MODEL if headers else "no-such-model"
                body = {"model": model, "prompt": "fail", "max_tokens": 5}
                response = client.post("/v1/completions", json=body, headers=headers)
                assert response.status_code == status, response.text
            if batch == 0:
                for group in ("4xx", "5xx"):
                    wait_for(prometheus, f'http_requests_total{{status="{group}"}}')
    wait_for(prometheus, f"sum(rate(vllm:generation_tokens_total[{RATE_INTERVAL}])) > 0")
    for group in ("4xx", "5xx"):
        errors = f'http_requests_total{{status="{group}"}}'
        wait_for(prometheus, f"sum(rate({errors}[{RATE_INTERVAL}])) > 0")
    wait_for(prometheus, 'vllm:lora_requests_info{running_lora_adapters="sql-lora"}')
    time.sleep(2)  # a few more scrapes inside every rate window

    exprs = [
        (panel["title"], target["expr"])
        for row in dashboard["panels"]
        for panel in [row, *row.get("panels", [])]
        for target in panel.get("targets", [])
    ]
    exprs += [(a["name"], a["expr"]) for a in dashboard["annotations"]["list"] if "expr" in a]
    results = {expr: query_range(prometheus, promql(expr)) for _, expr in exprs}
    empty = [title for title, expr in exprs if not results[expr]]
    assert not empty, f"queries without data: {empty}"

    (annotation,) = [e for title, e in exprs if title == "Scenario phases"]
    phases = query_range(prometheus, promql(annotation))
    assert {series["metric"]["phase"] for series in phases} == {"steady"}

    # The model_name variable: label_values(vllm:num_requests_running, model_name).
    values = httpx.get(
        f"{prometheus}/api/v1/label/model_name/values",
        params={"match[]": "vllm:num_requests_running"},
        timeout=10,
    ).json()
    assert values["status"] == "success" and values["data"] == [MODEL]
