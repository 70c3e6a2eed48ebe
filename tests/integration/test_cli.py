"""The llmsim command line as users run it: validate, schema, plan, --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import PROJECT_ROOT

SCENARIOS = sorted((PROJECT_ROOT / "scenarios").glob("*.y*ml")) + sorted(
    (PROJECT_ROOT / "scenarios").glob("*.toml")
)


def llmsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmsim", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )


def test_every_shipped_scenario_validates() -> None:
    assert SCENARIOS
    result = llmsim("validate", *map(str, SCENARIOS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_builtin_default_is_the_shipped_default_scenario() -> None:
    shipped = (PROJECT_ROOT / "scenarios" / "default.yaml").read_text()
    packaged = (PROJECT_ROOT / "llmsim" / "scenarios" / "default.yaml").read_text()
    assert shipped == packaged


def test_validate_reports_every_problem_with_file_line_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "engine:\n"
        "  max-num-seqs: lots\n"
        "  max-num-seq: 3\n"
        "latency:\n"
        "  inter-token-latency: -20ms\n"
        "  time-to-first-token: 100ms\n"
        "  time-to-first-token-std-dev: 50ms\n"
    )
    result = llmsim("validate", str(bad))
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith(f"{bad}:3:17: engine.max-num-seqs: ")
    assert lines[1] == f"{bad}:4:3: engine.max-num-seq: unknown key; did you mean 'max-num-seqs'?"
    assert lines[2] == f"{bad}:6:24: latency.inter-token-latency: a duration must not be negative"
    assert lines[3].startswith(f"{bad}:8:32: latency.time-to-first-token-std-dev: must be at most")


def test_validate_json_format_for_machines(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.yaml"
    good.write_text("version = 1\n")
    bad.write_text("version: 1\nbogus: true\n")
    result = llmsim("validate", "--format", "json", str(good), str(bad))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report[0] == {
        "file": str(good),
        "valid": True,
        "problems": [],
        "summary": "engine per-request",
    }
    assert report[1]["valid"] is False
    assert report[1]["problems"] == [
        {"file": str(bad), "line": 2, "col": 1, "key": "bogus", "message": "unknown key"}
    ]


def test_validate_says_how_a_scenario_paces_tokens(tmp_path: Path) -> None:
    path = tmp_path / "fast.yaml"
    path.write_text(
        "version: 1\nserver: {time-scale: 0.1}\n"
        "engine: {mode: batched, profile: llama-3.1-8b-h100-tp1}\n"
    )
    result = llmsim("validate", str(path))
    assert result.returncode == 0
    assert result.stdout == (
        f"{path}: ok (engine batched, profile llama-3.1-8b-h100-tp1; time-scale 0.1)\n"
    )


def test_committed_schema_matches_what_llmsim_schema_prints() -> None:
    committed = (PROJECT_ROOT / "schemas" / "scenario.schema.json").read_text()
    result = llmsim("schema")
    assert result.returncode == 0
    assert result.stdout == committed, "schemas/ is stale: run `make schema`"
    schema = json.loads(committed)
    assert set(schema["properties"]) >= {"version", "model", "latency", "responses"}


def test_plan_prints_resolved_samplers() -> None:
    result = llmsim("plan", "scenarios/slow-ttft.yaml")
    assert result.returncode == 0
    assert "time-to-first-token: constant: lognormal median 2000ms p99 6000ms" in result.stdout
    assert "seed: 42" in result.stdout


def test_plan_of_an_invalid_file_fails_with_the_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nengine: {max-num-seqs: 0}\n")
    result = llmsim("plan", str(bad))
    assert result.returncode == 1
    assert "engine.max-num-seqs" in result.stderr


@pytest.mark.parametrize("command", [[], ["run"], ["validate"], ["schema"], ["plan"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = llmsim(*command, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout


def test_committed_reference_table_matches_the_model() -> None:
    committed = (PROJECT_ROOT / "docs" / "scenario-reference.md").read_text()
    result = llmsim("schema", "--format", "markdown")
    assert result.returncode == 0
    assert result.stdout == committed, "docs/scenario-reference.md is stale: run `make schema`"
    assert "| `latency.time-to-first-token` | duration or distribution | `0s` |" in committed
