import datetime
import re
from pathlib import Path

import pytest

from llmsim.calibration.fit import Calibration, fit
from llmsim.calibration.profile import ProfileInfo, profile_text
from llmsim.calibration.traces import read_traces
from llmsim.scenario.profiles import load_profile
from tests.unit.calibration.support import simulated_trace


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory) -> Calibration:
    path = tmp_path_factory.mktemp("profile") / "traces.json"
    simulated_trace(path, count=120)
    return fit(read_traces([path]), 4096, 64, kv_cache_tokens=1_000_000)


def test_the_profile_loads_with_the_fitted_coefficients(
    calibration: Calibration, tmp_path: Path
) -> None:
    info = ProfileInfo("my-llama", "meta-llama/Llama-2-7b-hf", "A100", 1, "0.11.0")
    path = tmp_path / "my-llama.yaml"
    path.write_text(profile_text(calibration, info, ["runs/traces.json"]))
    profile = load_profile(str(path)).profile
    assert (profile.name, profile.model, profile.gpu) == ("my-llama", info.model, "A100")
    assert profile.vllm_version == "0.11.0"
    step = calibration.step
    assert profile.step_time.base == pytest.approx(step.base, rel=1e-5)
    assert profile.step_time.per_prefill_token == pytest.approx(step.per_prefill_token, rel=1e-5)
    assert profile.step_time.per_decode_token == pytest.approx(step.per_decode_token, rel=1e-5)
    assert profile.step_time.per_context_token == pytest.approx(step.per_context_token, rel=1e-5)
    overhead = profile.request_overhead
    assert overhead.base == pytest.approx(calibration.overhead.base, rel=1e-5)
    assert overhead.per_input_token == pytest.approx(calibration.overhead.per_input_token, rel=1e-5)
    assert profile.engine.max_num_batched_tokens == 4096
    assert profile.engine.max_num_seqs == 64


def test_the_profile_says_where_it_comes_from_and_how_well_it_fits(
    calibration: Calibration,
) -> None:
    info = ProfileInfo('a "quoted" name', "m")
    text = profile_text(calibration, info, ["a.json", "b.json"], datetime.date(2026, 1, 21))
    assert 'name: "a \\"quoted\\" name"' in text
    assert "fitted by llmsim calibrate from a.json, b.json on 2026-01-21: 120 requests" in text
    assert "R^2" in text
    assert "KV cache held 1,000,000 tokens" in text
    assert "vllm-version" not in text
    assert re.search(r"\nstep-time:\n  base: [\d.]+ms\n  per-prefill-token: [\d.]+us\n", text)
