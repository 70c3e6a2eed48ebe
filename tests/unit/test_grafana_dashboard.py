"""The Grafana dashboard and the Prometheus scrape examples of ``manifests/`` (docs/grafana.md).

Every PromQL expression of the dashboard names only series llmsim really exports (read from
``/metrics`` of an app built in-process), uses only labels those series carry, and takes
``rate()`` of exactly the counters and histogram parts. ``promtool``, when installed, checks the
PromQL syntax and the scrape config; tests/integration/test_grafana_queries.py runs every query
through a real Prometheus.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

from llmsim.plan.compile import compile_scenario
from llmsim.scenario.loader import load_scenario_text
from llmsim.server.app import create_app
from tests.support import PROJECT_ROOT

DASHBOARD_PATH = PROJECT_ROOT / "manifests" / "grafana" / "llmsim-vllm.json"
PROMETHEUS_DIR = PROJECT_ROOT / "manifests" / "prometheus"
CHART = PROJECT_ROOT / "charts" / "llmsim"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)"
)

# A scenario under which every family llmsim can export is present: LoRA, the KV cache, a phase.
SCENARIO = """\
version: 1
model: {name: dashboard-model}
lora:
  max-loras: 1
  lora-modules: [{name: sql-lora, path: /adapters/sql}]
kv-cache: {enable-kvcache: true, zmq-endpoint: ""}
phases:
  - {name: steady, start: 0s, latency: {time-to-first-token: 10ms}}
"""

# vLLM's and llmsim's own names, and the API server's http_* (prometheus-fastapi-instrumentator).
NAME = r"(?:(?:vllm|llmsim):[A-Za-z0-9_:]+|http_[A-Za-z0-9_]+)"
METRIC = re.compile(rf"\b{NAME}")
SELECTOR = re.compile(rf"\b({NAME})\{{([^}}]*)\}}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
LABEL_VALUES = re.compile(r"label_values\(\s*([^,\s]+)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)")
CUMULATIVE_SUFFIXES = ("_total", "_bucket", "_sum", "_count")
# Labels Prometheus adds to every scraped series (static config), besides llmsim's own.
TARGET_LABELS = {"instance", "job"}


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD_PATH.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """Every sample name llmsim's ``/metrics`` serves -> the label names it carries."""
    app = create_app(compile_scenario(load_scenario_text(SCENARIO, "dashboard.yaml")), environ={})
    with TestClient(app) as client:
        # http_requests_total has a series once a request was counted (/metrics is not).
        assert client.get("/v1/models").status_code == 200
        response = client.get("/metrics")
    assert response.status_code == 200
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels of collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every target of every panel."""
    for panel in panels(dashboard):
        yield from panel.get("targets", [])


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression: the panels' targets and the annotations."""
    exprs = [target["expr"] for target in queries(dashboard)]
    exprs += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    return exprs


def variable(dashboard: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [v for v in dashboard["templating"]["list"] if v["name"] == name]
    assert len(found) == 1, name
    return found[0]


def test_dashboard_is_an_importable_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["id"] is None  # Grafana assigns one on import
    assert dashboard["uid"] == "llmsim-vllm"
    assert dashboard["title"]
    assert "__inputs" not in dashboard  # the datasource is a variable, not an import input


def test_every_panel_has_a_unique_id_and_the_datasource_variable(
    dashboard: dict[str, Any],
) -> None:
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), ids
    for panel in panels(dashboard):
        if panel["type"] == "row":
            assert not panel.get("targets"), panel["title"]
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


def test_datasource_and_model_name_variables(
    dashboard: dict[str, Any], exported: dict[str, set[str]]
) -> None:
    datasource = variable(dashboard, "datasource")
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    model = variable(dashboard, "model_name")
    assert model["type"] == "query"
    assert model["datasource"] == DATASOURCE
    assert model["multi"] and model["includeAll"] and model["allValue"] == ".*"
    for text in (model["definition"], model["query"]["query"]):
        match = LABEL_VALUES.fullmatch(text)
        assert match is not None, text
        metric, label = match.groups()
        assert metric in exported and label in exported[metric]
    for target in queries(dashboard):  # every query follows the model selection
        assert 'model_name=~"$model_name"' in target["expr"], target["expr"]


def test_every_query_names_series_llmsim_exports(
    dashboard: dict[str, Any], exported: dict[str, set[str]]
) -> None:
    families = {name.removesuffix(s) for name in exported for s in CUMULATIVE_SUFFIXES} | set(
        exported
    )
    for expr in expressions(dashboard):
        names = METRIC.findall(expr)
        assert names, expr
        for name in names:
            assert name in exported, f"{name} is not exported (in {expr})"
            family = next(
                (name.removesuffix(s) for s in CUMULATIVE_SUFFIXES if name.endswith(s)), name
            )
            assert family in families, name


def test_rate_is_taken_of_counters_and_histograms_only(
    dashboard: dict[str, Any], exported: dict[str, set[str]]
) -> None:
    for expr in expressions(dashboard):
        for match in METRIC.finditer(expr):
            name = match.group()
            in_rate = expr[: match.start()].rstrip().endswith("rate(")
            cumulative = name.endswith(CUMULATIVE_SUFFIXES)
            assert in_rate == cumulative, f"{name} in {expr}"


def test_every_label_a_query_uses_is_exported(
    dashboard: dict[str, Any], exported: dict[str, set[str]]
) -> None:
    every_label = set().union(*exported.values()) | TARGET_LABELS
    for expr in expressions(dashboard):
        for name, matchers in SELECTOR.findall(expr):
            for label in MATCHER.findall(matchers):
                assert label in exported.get(name, set()), (
                    f"{name} has no label {label} (in {expr})"
                )
        for grouping in GROUPING.findall(expr):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                assert label in every_label, f"no series has a label {label} (in {expr})"
    for target in queries(dashboard):
        for label in LEGEND_LABEL.findall(target.get("legendFormat", "")):
            assert label in every_label, target["legendFormat"]
    for annotation in dashboard["annotations"]["list"]:
        labels = LEGEND_LABEL.findall(annotation.get("titleFormat", ""))
        labels += LEGEND_LABEL.findall(annotation.get("textFormat", ""))
        labels += [key for key in annotation.get("tagKeys", "").split(",") if key]
        assert set(labels) <= every_label, annotation["name"]


def test_the_panels_the_dashboard_promises(dashboard: dict[str, Any]) -> None:
    exprs = "\n".join(expressions(dashboard))
    for histogram in (
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:e2e_request_latency_seconds",
        "vllm:request_queue_time_seconds",
    ):
        for quantile in ("0.5", "0.95", "0.99"):
            assert f"histogram_quantile({quantile}, sum by (le) (rate({histogram}_bucket" in exprs
    for needed in (
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_hits_total",
        "vllm:prefix_cache_queries_total",
        "vllm:lora_requests_info",
        "sum by (finished_reason) (rate(vllm:request_success_total",
        "group_left (phase)",
        'sum by (status) (rate(http_requests_total{status=~"4xx|5xx"}',
        'sum by (phase, status) (rate(http_requests_total{status=~"4xx|5xx"}',
    ):
        assert needed in exprs, needed
    annotations = dashboard["annotations"]["list"]
    phases = [a for a in annotations if "llmsim:scenario_info" in a.get("expr", "")]
    assert phases and phases[0]["datasource"] == DATASOURCE


def promql_for_prometheus(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced, as Prometheus takes it."""
    return expr.replace("$__rate_interval", "1m").replace("$model_name", ".*")


@needs_promtool
def test_promtool_parses_every_query(dashboard: dict[str, Any], tmp_path: Path) -> None:
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": promql_for_prometheus(expr)}
                    for i, expr in enumerate(expressions(dashboard))
                ],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    assert PROMTOOL is not None
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_example_scrapes_llmsim_every_5s() -> None:
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "llmsim"]
    assert job["metrics_path"] == "/metrics"
    assert job["scrape_interval"] == "5s"
    assert job["static_configs"] == [{"targets": ["localhost:8000"]}]


@needs_promtool
def test_promtool_accepts_the_prometheus_example() -> None:
    assert PROMTOOL is not None
    path = PROMETHEUS_DIR / "prometheus.yml"
    command = [PROMTOOL, "check", "config", str(path)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_example_follows_the_charts_pod_labels_and_annotations() -> None:
    config = load_yaml(PROMETHEUS_DIR / "kubernetes-pods.yml")
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    deployment = (CHART / "templates" / "deployment.yaml").read_text(encoding="utf-8")
    helpers = (CHART / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    chart_name = load_yaml(CHART / "Chart.yaml")["name"]
    keeps = {
        rule["source_labels"][0]: rule["regex"]
        for rule in job["relabel_configs"]
        if rule.get("action") == "keep"
    }
    assert keeps["__meta_kubernetes_pod_label_app_kubernetes_io_name"] == chart_name
    assert 'app.kubernetes.io/name: {{ include "llmsim.name" . }}' in helpers
    assert keeps["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
    for annotation in ("scrape", "port", "path"):
        assert f"prometheus.io/{annotation}:" in deployment
        meta = f"__meta_kubernetes_pod_annotation_prometheus_io_{annotation}"
        assert any(meta in rule.get("source_labels", []) for rule in job["relabel_configs"])


def test_servicemonitor_values_are_values_of_the_chart() -> None:
    chart_values = load_yaml(CHART / "values.yaml")
    ours = load_yaml(PROMETHEUS_DIR / "servicemonitor-values.yaml")

    def check(given: dict[str, Any], known: dict[str, Any], path: str) -> None:
        for key, value in given.items():
            assert key in known, f"{path}{key} is not a value of the chart"
            if isinstance(known[key], dict) and known[key]:
                check(value, known[key], f"{path}{key}.")

    check(ours, chart_values, "")
    assert ours["serviceMonitor"]["enabled"] is True
    template = (CHART / "templates" / "servicemonitor.yaml").read_text(encoding="utf-8")
    assert "path: /metrics" in template
