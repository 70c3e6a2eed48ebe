"""``llmsim calibrate`` and ``llmsim replay`` as users run them (no server needed here)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmsim.calibration.cli import human
from llmsim.cli import app
from llmsim.scenario.profiles import load_profile
from tests.support import PROJECT_ROOT, free_port
from tests.unit.calibration.support import TRUE_STEP, simulated_trace

runner = CliRunner()

GROUND_TRUTH = PROJECT_ROOT.parent / "shared" / "data" / "vllm-ground-truth"
GROUND_TRUTH_RUNS = {"jan21-llama7b-train-1": 282, "jan20-codellama-train-1": 280}


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "traces.json"
    simulated_trace(path, count=120)
    return path


def test_calibrate_prints_coefficients_and_fit_quality(trace: Path) -> None:
    result = runner.invoke(app, ["calibrate", str(trace), "--max-num-batched-tokens", "4096"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "fitted 120 requests from 1 trace file" in out
    assert "max-num-batched-tokens 4096, max-num-seqs 256" in out
    assert "step time:        base 5.99" in out
    assert "prefill time, per request" in out
    assert "the engine model on the traces' arrivals (KV cache unbounded)" in out


def test_calibrate_writes_a_profile_named_after_the_file(trace: Path, tmp_path: Path) -> None:
    output = tmp_path / "fitted-llama.yaml"
    result = runner.invoke(
        app,
        [
            *("calibrate", str(trace), "--max-num-batched-tokens", "4096"),
            *("--max-num-seqs", "64", "-o", str(output)),
            *("--model", "meta-llama/Llama-2-7b-hf", "--gpu", "A100"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"profile written to {output}" in result.stdout
    profile = load_profile(str(output)).profile
    assert (profile.name, profile.gpu) == ("fitted-llama", "A100")
    assert profile.model == "meta-llama/Llama-2-7b-hf"
    assert profile.step_time.base == pytest.approx(TRUE_STEP.base, rel=0.01)
    assert profile.engine.max_num_seqs == 64


def test_calibrate_json_takes_engine_settings_from_beside_the_trace(trace: Path) -> None:
    (trace.parent / "exp-config.yaml").write_text(
        "model: m\nmax_num_batched_tokens: 4096\nmax_num_seqs: 64\n"
    )
    try:
        result = runner.invoke(app, ["calibrate", str(trace.parent), "--json", "--no-context"])
    finally:
        (trace.parent / "exp-config.yaml").unlink()
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["engine"] == {"max_num_batched_tokens": 4096, "max_num_seqs": 64}
    assert document["step_time"]["per_context_token"] == 0.0
    assert document["requests"] == 120
    assert set(document["simulated"]) == {"ttft", "itl", "e2e"}
    assert document["settings_from"] == [str(trace.parent / "exp-config.yaml")]


def test_calibrate_needs_the_token_budget(trace: Path) -> None:
    result = runner.invoke(app, ["calibrate", str(trace)])
    assert result.exit_code == 2
    assert "give --max-num-batched-tokens" in result.stderr


def test_calibrate_names_the_line_of_a_file_that_is_not_a_trace(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceSpans": []}\nnot json\n')
    result = runner.invoke(app, ["calibrate", str(bad), "--max-num-batched-tokens", "8"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"llmsim: {bad}:2: not JSON")
    assert "Traceback" not in result.output


def test_replay_says_in_one_line_that_the_server_is_not_there(trace: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["replay", str(trace), "--url", url, "--limit", "2"])
    assert result.exit_code == 2
    assert result.stderr == f"llmsim: cannot connect to {url}: connection refused\n"


def test_replay_refuses_a_time_scale_that_is_not_positive(trace: Path) -> None:
    result = runner.invoke(app, ["replay", str(trace), "--time-scale", "0"])
    assert result.exit_code == 2
    assert "--time-scale" in result.output


def test_durations_are_shown_with_their_unit() -> None:
    assert [human(x) for x in (0.0, 2.5, 0.00627076, 1.899e-5, 1.765e-7)] == [
        "0s",
        "2.5s",
        "6.271ms",
        "18.99us",
        "176.5ns",
    ]


@pytest.mark.skipif(
    not GROUND_TRUTH.is_dir(),
    reason=f"the real vLLM ground truth is not there ({GROUND_TRUTH})",
)
@pytest.mark.parametrize("run", sorted(GROUND_TRUTH_RUNS))
def test_calibrate_fits_each_real_vllm_run(run: str, tmp_path: Path) -> None:
    folder = GROUND_TRUTH / run
    output = tmp_path / f"{run}.yaml"
    result = runner.invoke(app, ["calibrate", str(folder), "--json", "-o", str(output)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["requests"] == GROUND_TRUTH_RUNS[run]
    assert document["engine"]["max_num_batched_tokens"] == 4096
    assert document["fit"]["steps"]["r_squared"] > 0.98
    assert document["fit"]["decode"]["mean_abs_pct_error"] < 2.0
    assert document["fit"]["prefill"]["mean_abs_pct_error"] < 10.0
    step = document["step_time"]
    assert 0.001 < step["base"] < 0.1
    assert 1e-6 < step["per_prefill_token"] < 1e-3
    for name in ("ttft", "itl", "e2e"):
        assert abs(document["simulated"][name]["mean_error_pct"]) < 10.0, name
    assert load_profile(str(output)).profile.model == document_model(folder)


def document_model(folder: Path) -> str:
    for line in (folder / "exp-config.yaml").read_text().splitlines():
        if line.startswith("model:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no model in exp-config.yaml")
