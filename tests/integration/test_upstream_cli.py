"""llmsim as a drop-in replacement of the upstream simulator: the ``llm-d-inference-sim``
command line, ``--config`` flat files, the environment, ``llmsim run`` with upstream flags, and
``llmsim migrate`` (CFG-1 to CFG-4)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmsim.plan.compile import compile_scenario
from llmsim.plan.describe import describe_plan
from llmsim.scenario.loader import load_scenario, read_scenario
from llmsim.upstream.migrate import migrate_file
from tests.support import (
    PROJECT_ROOT,
    RunningServer,
    start_server,
    start_upstream_server,
    upstream_script,
)
from tests.upstream_configs import COMMAND_LINES, FLAT_CONFIGS, INVALID_CONFIG


@pytest.fixture
def servers() -> Iterator[list[RunningServer]]:
    started: list[RunningServer] = []
    yield started
    for server in started:
        server.stop()


def config(server: RunningServer) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/admin/config", timeout=5)
    assert response.status_code == 200
    return dict(response.json())


def model_ids(server: RunningServer) -> list[str]:
    response = httpx.get(f"{server.openai_base_url}/models", timeout=5)
    return [entry["id"] for entry in response.json()["data"]]


def upstream(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(upstream_script()), *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
        env=env,
    )


def llmsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmsim", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )


def write_config(folder: Path, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(FLAT_CONFIGS[name])
    return path


def test_entry_point_serves_the_flags(servers: list[RunningServer]) -> None:
    server = start_upstream_server(
        [
            "--model",
            "my-model",
            "--port",
            "{port}",
            "--served-model-name",
            "alias-a",
            "alias-b",
            "--max-num-seqs=7",
            "--time-to-first-token",
            "100ms",
            "--v=4",
            "--default-embedding-dimensions",
            "16",
        ]
    )
    servers.append(server)
    assert model_ids(server) == ["alias-a", "alias-b"]
    embedding = httpx.post(
        f"{server.openai_base_url}/embeddings", json={"input": "hello there"}, timeout=5
    )
    assert len(embedding.json()["data"][0]["embedding"]) == 16
    view = config(server)
    assert view["model"] == "my-model"
    assert view["served-model-name"] == ["alias-a", "alias-b"]
    assert view["max-num-seqs"] == 7
    assert view["time-to-first-token"] == "100ms"
    assert view["max-model-len"] == 1024
    assert view["inter-token-latency"] == "0s"


@pytest.mark.parametrize("name", sorted(COMMAND_LINES))
def test_manifest_command_lines_run_unchanged(name: str, servers: list[RunningServer]) -> None:
    server = start_upstream_server(COMMAND_LINES[name], env={"POD_IP": "127.0.0.1"})
    servers.append(server)
    [served] = model_ids(server)
    assert served == config(server)["model"]


@pytest.mark.parametrize("name", sorted(FLAT_CONFIGS))
def test_flat_configs_run_unchanged(
    name: str, tmp_path: Path, servers: list[RunningServer]
) -> None:
    path = write_config(tmp_path, name)
    expected = load_scenario(path)
    server = start_upstream_server(["--config", str(path), "--port", "{port}"])
    servers.append(server)
    assert model_ids(server)[: len(expected.model.served_names)] == expected.model.served_names
    view = config(server)
    assert view["max-num-seqs"] == expected.engine.max_num_seqs
    assert view["seed"] == expected.seed or expected.seed is None


def test_invalid_config_is_refused_with_its_location(tmp_path: Path) -> None:
    path = tmp_path / "invalid.yaml"
    path.write_text(INVALID_CONFIG)
    result = upstream("--config", str(path))
    assert result.returncode == 1
    assert f"{path}:9:1: zmq-max-connect-attempts: must not be negative" in result.stderr


def test_model_is_required_CFG_2() -> None:
    result = upstream("--port", "1")
    assert result.returncode == 1
    assert "model parameter is empty" in result.stderr


def test_bad_flags_exit_2_as_a_command_line_error() -> None:
    unknown = upstream("--model", "m", "--max-num-seq", "3")
    assert unknown.returncode == 2
    assert "unknown flag: --max-num-seq (did you mean --max-num-seqs?)" in unknown.stderr
    bad = upstream("--model", "m", "--max-num-seqs", "lots")
    assert bad.returncode == 2
    assert 'invalid argument "lots" for "--max-num-seqs" flag' in bad.stderr
    out_of_range = upstream("--model", "m", "--max-num-seqs", "0")
    assert out_of_range.returncode == 1
    assert "--max-num-seqs: engine.max-num-seqs: Input should be greater" in out_of_range.stderr


def test_help_lists_every_flag_with_its_key() -> None:
    result = upstream("--help")
    assert result.returncode == 0
    assert "--max-num-seqs  int -> engine.max-num-seqs (default 5)" in result.stdout
    assert "--enable-sleep-mode, --no-enable-sleep-mode" in result.stdout


def test_sim_model_sets_the_model_below_the_flag_CFG_1(servers: list[RunningServer]) -> None:
    from_env = start_upstream_server(["--port", "{port}"], env={"SIM_MODEL": "env-model"})
    servers.append(from_env)
    assert model_ids(from_env) == ["env-model"]
    flag = start_upstream_server(
        ["--port", "{port}", "--model", "flag-model"], env={"SIM_MODEL": "env-model"}
    )
    servers.append(flag)
    assert model_ids(flag) == ["flag-model"]


def test_llmsim_run_takes_upstream_flags_over_the_scenario(
    tmp_path: Path, servers: list[RunningServer]
) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "version: 1\nmodel: {name: m}\nengine: {max-num-seqs: 2}\n"
        "latency: {inter-token-latency: 5ms}\n"
    )
    server = start_server(
        scenario, ["--max-num-seqs", "3", "--time-to-first-token=50ms", "--enable-kvcache=false"]
    )
    servers.append(server)
    view = config(server)
    assert view["max-num-seqs"] == 3
    assert view["time-to-first-token"] == "50ms"
    assert view["inter-token-latency"] == "5ms"


def test_llmsim_run_serves_a_flat_file_as_the_scenario(
    tmp_path: Path, servers: list[RunningServer]
) -> None:
    server = start_server(write_config(tmp_path, "loras-and-names"), ["--v=3"])
    servers.append(server)
    assert model_ids(server)[:2] == ["alpha", "beta"]
    assert config(server)["scenario"] == "loras-and-names"


def test_llmsim_run_with_only_upstream_flags_starts_from_upstream_defaults(
    servers: list[RunningServer],
) -> None:
    server = start_server(None, ["--max-num-seqs", "4"])
    servers.append(server)
    view = config(server)
    assert view["max-num-seqs"] == 4
    assert view["time-to-first-token"] == "0s"
    assert view["max-model-len"] == 1024


def test_validate_says_a_flat_file_was_mapped(tmp_path: Path) -> None:
    path = write_config(tmp_path, "int-latencies")
    result = llmsim("validate", str(path))
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: ok (an upstream flat config, mapped onto scenario sections)"
    assert lines[1].startswith(f"{path}:7:1: kv_cache_transfer_latency: warning: ")
    report = json.loads(llmsim("validate", "--format", "json", str(path)).stdout)
    assert report[0]["valid"] and report[0]["flat"]
    assert [w["key"] for w in report[0]["warnings"]] == ["kv_cache_transfer_latency"]


@pytest.mark.parametrize("name", sorted(FLAT_CONFIGS))
def test_migrated_scenario_compiles_to_the_same_plan(name: str, tmp_path: Path) -> None:
    path = write_config(tmp_path, name)
    text, loaded = migrate_file(path)
    migrated_path = tmp_path / f"{name}.scenario.yaml"
    migrated_path.write_text(text)
    migrated = read_scenario(migrated_path)
    assert not migrated.flat
    assert migrated.notes == []
    flat_plan = compile_scenario(loaded.scenario, default_seed=1, environ={})
    new_plan = compile_scenario(migrated.scenario, default_seed=1, environ={})
    assert describe_plan(new_plan, seed_given=True) == describe_plan(flat_plan, seed_given=True)
    same = {"description": ""}
    assert migrated.scenario.model_copy(update=same) == loaded.scenario.model_copy(update=same)


def test_migrate_command_writes_a_scenario_that_validates(tmp_path: Path) -> None:
    path = write_config(tmp_path, "dumped-config")
    output = tmp_path / "out.yaml"
    result = llmsim("migrate", str(path), "-o", str(output))
    assert result.returncode == 0, result.stderr
    assert "tokenizers-cache-dir: warning:" in result.stderr
    text = output.read_text()
    assert text.startswith("# Written by `llmsim migrate`")
    assert "version: 1\n" in text
    assert "  max-num-seqs: 3\n" in text
    assert llmsim("validate", str(output)).stdout == f"{output}: ok (engine per-request)\n"
    refused = llmsim("migrate", str(output))
    assert refused.returncode == 1
    assert "already a scenario" in refused.stderr
