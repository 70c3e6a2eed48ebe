"""The fit recovers the coefficients of traces made by the engine model with known ones."""

import dataclasses
from pathlib import Path

import pytest

from llmsim.calibration.fit import Calibration, FitError, fit, percentile
from llmsim.calibration.simulate import OverheadCoefficients, StepCoefficients
from llmsim.calibration.traces import read_traces
from tests.unit.calibration.support import (
    TRUE_OVERHEAD,
    TRUE_STEP,
    Span,
    simulated_trace,
    write_trace,
)


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fit") / "traces.json"
    simulated_trace(path)
    return path


@pytest.fixture(scope="module")
def calibration(trace: Path) -> Calibration:
    return fit(read_traces([trace]), max_num_batched_tokens=4096, max_num_seqs=64)


def test_step_coefficients_are_recovered(calibration: Calibration) -> None:
    step = calibration.step
    assert step.base == pytest.approx(TRUE_STEP.base, rel=0.01)
    assert step.per_prefill_token == pytest.approx(TRUE_STEP.per_prefill_token, rel=0.01)
    assert step.per_decode_token == pytest.approx(TRUE_STEP.per_decode_token, rel=0.03)
    assert step.per_context_token == pytest.approx(TRUE_STEP.per_context_token, rel=0.03)


def test_request_overhead_is_recovered(calibration: Calibration) -> None:
    # Within a fraction of a step: a request's wait for the step in progress is estimated.
    overhead = calibration.overhead
    assert overhead.base == pytest.approx(TRUE_OVERHEAD.base, abs=0.3e-3)
    assert overhead.per_input_token == pytest.approx(TRUE_OVERHEAD.per_input_token, rel=0.1)
    assert overhead.per_output_token == pytest.approx(0.0, abs=1e-7)


def test_the_fit_explains_the_traces(calibration: Calibration) -> None:
    assert calibration.requests == 200
    assert calibration.outliers == 0
    assert calibration.step_fit.r_squared > 0.999
    assert calibration.prefill.r_squared > 0.999
    assert calibration.decode.mean_abs_pct_error < 1.0
    for name in ("ttft", "itl", "e2e"):
        assert abs(calibration.simulated[name].mean_error_pct) < 1.0, name


def test_without_context_three_coefficients_are_fitted(trace: Path) -> None:
    result = fit(read_traces([trace]), 4096, 64, context=False)
    assert result.step.per_context_token == 0.0
    assert result.step.base == pytest.approx(TRUE_STEP.base, rel=0.02)
    assert result.step.per_prefill_token == pytest.approx(TRUE_STEP.per_prefill_token, rel=0.03)
    # The decoding sequences' context time lands on per-decode-token.
    assert result.step.per_decode_token > TRUE_STEP.per_decode_token


def test_other_coefficients_and_budgets_are_recovered(tmp_path: Path) -> None:
    step = StepCoefficients(0.025, 95e-6, 400e-6, 0.0)
    overhead = OverheadCoefficients(0.001, 0.0, 0.0)
    path = tmp_path / "traces.json"
    simulated_trace(path, step, overhead, budget=2048, max_num_seqs=16, seed=7, count=120)
    result = fit(read_traces([path]), 2048, 16, context=False)
    assert result.step.base == pytest.approx(step.base, rel=0.01)
    assert result.step.per_prefill_token == pytest.approx(step.per_prefill_token, rel=0.01)
    assert result.step.per_decode_token == pytest.approx(step.per_decode_token, rel=0.03)
    assert result.overhead.base == pytest.approx(overhead.base, rel=0.1, abs=2e-4)


def test_a_warm_up_outlier_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "traces.json"
    spans = simulated_trace(path)
    # vLLM's first request often pays for warm-up: make its prefill ten times longer.
    first = spans[0]
    slow = dataclasses.replace(
        first,
        prefill=first.prefill * 10,
        ttft=first.ttft + first.prefill * 9,
        e2e=first.e2e + first.prefill * 9,
    )
    write_trace(path, [slow, *spans[1:]])
    result = fit(read_traces([path]), 4096, 64)
    assert result.outliers >= 1
    assert result.step.base == pytest.approx(TRUE_STEP.base, rel=0.02)
    assert result.step.per_prefill_token == pytest.approx(TRUE_STEP.per_prefill_token, rel=0.02)


def test_two_runs_are_fitted_together_each_on_its_own_timeline(tmp_path: Path) -> None:
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    simulated_trace(a, seed=1, count=100)
    simulated_trace(b, seed=2, count=100)  # the same clock: the two runs overlap in time
    result = fit(read_traces([a, b]), 4096, 64)
    assert result.requests == 200
    assert result.step.base == pytest.approx(TRUE_STEP.base, rel=0.01)
    assert result.step.per_prefill_token == pytest.approx(TRUE_STEP.per_prefill_token, rel=0.01)


def test_traces_without_engine_times_cannot_be_fitted(tmp_path: Path) -> None:
    spans = [Span(float(i), 10, 5, 0.1, 0.3, None, None, None) for i in range(10)]
    path = write_trace(tmp_path / "v0.json", spans)
    with pytest.raises(FitError, match="no engine times"):
        fit(read_traces([path]), 4096)


def test_too_few_requests_cannot_be_fitted(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "t.json", [Span(0.0, 10, 5, 0.1, 0.3, 0.0, 0.05, 0.2)])
    with pytest.raises(FitError, match="too few"):
        fit(read_traces([path]), 4096)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 90) == pytest.approx(4.6)
    assert percentile([7.0], 90) == 7.0
