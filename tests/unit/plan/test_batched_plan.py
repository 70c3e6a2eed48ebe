"""RuntimePlan.batched: the engine loop's coefficients, resolved key by key."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsim.plan.compile import compile_scenario
from llmsim.plan.describe import describe_plan, scenario_summary
from llmsim.plan.plan import BatchedPlan, RequestOverhead, RuntimePlan, StepTimeModel
from llmsim.scenario.loader import load_scenario_text
from llmsim.scenario.profiles import shipped_profile

US = 1e-6


def plan(text: str) -> RuntimePlan:
    return compile_scenario(load_scenario_text("version: 1\nseed: 1\n" + text, "s.yaml"))


def batched(text: str) -> BatchedPlan:
    found = plan(text).batched
    assert found is not None
    return found


def test_per_request_mode_has_no_batched_plan() -> None:
    assert plan("").batched is None
    assert plan("engine: {mode: per-request}\n").batched is None


def test_batched_without_profile_or_step_time_uses_the_default_step_time() -> None:
    assert batched("engine: {mode: batched}\n") == BatchedPlan(
        step_time=StepTimeModel(base=0.005, per_prefill_token=50e-6, per_decode_token=200e-6),
        request_overhead=RequestOverhead(),
        max_num_batched_tokens=2048,
        profile=None,
    )


def test_step_time_keys_override_the_default_one_by_one() -> None:
    step = batched("engine: {mode: batched, step-time: {base: 8ms, jitter: 10%}}\n").step_time
    assert step == StepTimeModel(
        base=pytest.approx(0.008),
        per_prefill_token=50e-6,
        per_decode_token=200e-6,
        jitter=pytest.approx(0.1),
    )


def test_profile_by_name_gives_its_coefficients_in_seconds() -> None:
    found = batched("engine: {mode: batched, profile: llama-3.1-8b-h100-tp1}\n")
    assert found.profile == "llama-3.1-8b-h100-tp1"
    assert found.step_time.base == pytest.approx(5752.705191348184 * US)
    assert found.step_time.per_prefill_token == pytest.approx(17.25086436834028 * US)
    assert found.step_time.per_decode_token == pytest.approx(5.999143920128404 * US)
    assert found.request_overhead.base == pytest.approx(232.46191091038054 * US)
    assert found.request_overhead.per_input_token == pytest.approx(1.752360364195244 * US)
    assert found.request_overhead.per_output_token == pytest.approx(3357.4400353290152 * US)
    assert found.max_num_batched_tokens == 2048


def test_explicit_keys_override_the_profile_key_by_key() -> None:
    profile = shipped_profile("llama-3.1-8b-h100-tp1")
    found = batched(
        "engine:\n"
        "  mode: batched\n"
        "  profile: llama-3.1-8b-h100-tp1\n"
        "  max-num-batched-tokens: 512\n"
        "  step-time: {per-decode-token: 1ms, jitter: 5}\n"
        "  request-overhead: {per-output-token: 0s}\n"
    )
    assert found.step_time == StepTimeModel(
        base=profile.step_time.base,
        per_prefill_token=profile.step_time.per_prefill_token,
        per_decode_token=pytest.approx(0.001),
        per_context_token=0.0,
        jitter=pytest.approx(0.05),
    )
    assert found.request_overhead == RequestOverhead(
        base=profile.request_overhead.base,
        per_input_token=profile.request_overhead.per_input_token,
        per_output_token=0.0,
    )
    assert found.max_num_batched_tokens == 512


def test_profile_by_path_and_its_token_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mine.yaml").write_text(
        "name: mine\nmodel: m\ngpu: L4\ntensor-parallel-size: 1\nsource: by hand\n"
        "step-time: {base: 3ms, per-prefill-token: 10us, per-decode-token: 20us,"
        " per-context-token: 1ns}\n"
        "request-overhead: {base: 2ms}\n"
        "engine: {max-num-batched-tokens: 8192, max-num-seqs: 512}\n"
    )
    monkeypatch.chdir(tmp_path)
    compiled = plan("engine: {mode: batched, profile: ./mine.yaml, max-num-seqs: 7}\n")
    found = compiled.batched
    assert found is not None
    assert found.profile == "./mine.yaml"
    assert found.step_time == StepTimeModel(
        base=pytest.approx(0.003),
        per_prefill_token=pytest.approx(10 * US),
        per_decode_token=pytest.approx(20 * US),
        per_context_token=pytest.approx(1e-9),
    )
    assert found.request_overhead == RequestOverhead(base=pytest.approx(0.002))
    assert found.max_num_batched_tokens == 8192
    assert compiled.max_num_seqs == 7, "the profile's max-num-seqs is informational"
    described = describe_plan(compiled, seed_given=True)
    assert "profile: ./mine.yaml: m on L4, TP 1" in described
    assert "measured with max-num-batched-tokens 8192, max-num-seqs 512" in described


def test_describe_shows_the_mode_profile_coefficients_and_time_scale() -> None:
    described = describe_plan(
        plan(
            "server: {time-scale: 0.5}\n"
            "engine: {mode: batched, profile: llama-3.1-8b-h100-tp1, step-time: {jitter: 5}}\n"
        ),
        seed_given=True,
    )
    assert "  time-scale: 0.5 (2 times faster than real time;" in described
    assert "  mode: batched" in described
    assert "  max-num-batched-tokens: 2048" in described
    assert (
        "  profile: llama-3.1-8b-h100-tp1: meta-llama/Llama-3.1-8B-Instruct on H100, TP 1,"
        " vLLM v0.8.4"
    ) in described
    assert (
        "  step time: 2.87635ms + 8.62543us x prefill tokens"
        " + 2.99957us x decoding sequences, jitter 5% (normal)"
    ) in described
    assert "  request overhead: 116.231us + 876.18ns x prompt tokens" in described


def test_describe_of_the_per_request_mode() -> None:
    described = describe_plan(plan(""), seed_given=True)
    assert "  mode: per-request (upstream semantics)" in described
    assert "  time-scale: 1 (real time)" in described
    assert "max-num-batched-tokens" not in described


def test_describe_of_the_default_step_time() -> None:
    described = describe_plan(plan("engine: {mode: batched}\n"), seed_given=True)
    assert "  profile: none (default step time" in described
    assert "  step time: 5ms + 50us x prefill tokens + 200us x decoding sequences\n" in described


def test_scenario_summary_for_validate() -> None:
    def summary(text: str) -> str:
        return scenario_summary(load_scenario_text("version: 1\n" + text, "s.yaml"))

    assert summary("") == "engine per-request"
    assert summary("server: {time-scale: 0.1}\n") == "engine per-request; time-scale 0.1"
    assert summary("engine: {mode: batched}\n") == "engine batched, default step time"
    assert (
        summary(
            "engine:\n  mode: batched\n  profile: phi-4-h100-tp1\n"
            "  step-time: {base: 1ms, jitter: 2}\n  request-overhead: {per-output-token: 0s}\n"
        )
        == "engine batched, profile phi-4-h100-tp1, set: step-time base, jitter;"
        " request-overhead per-output-token"
    )
