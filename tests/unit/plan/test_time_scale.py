"""server.time-scale: the compiler multiplies every simulated duration of the plan by it."""

from __future__ import annotations

import random
from dataclasses import fields

import pytest

from llmsim.plan.compile import compile_scenario, phase_plan
from llmsim.plan.plan import LatencyPlan, RuntimePlan
from llmsim.plan.samplers import (
    Constant,
    Empirical,
    Lognormal,
    Sampler,
    TimeScaled,
    Uniform,
    UpstreamNormal,
    time_scaled,
)
from llmsim.scenario.loader import load_scenario_text

SCENARIO = """\
version: 1
seed: 7
server: {startup-duration: 2s}
engine: {max-num-seqs: 4}
latency:
  time-to-first-token: 200ms
  time-to-first-token-std-dev: 20ms
  inter-token-latency: {distribution: lognormal, median: 12ms, p99: 40ms}
  prefill-overhead: 20ms
  prefill-time-per-token: 250us
  prefill-time-std-dev: 5ms
  kv-cache-transfer-latency: {distribution: empirical, percentiles: {p50: 2ms, p99: 9ms}}
  kv-cache-transfer-time-per-token: 3us
  kv-cache-transfer-time-std-dev: 1ms
  time-to-generate-image: {distribution: normal, mean: 1s, std-dev: 100ms}
  time-factor-under-load: 2
metrics: {fake-metrics-refresh-interval: 250ms}
rules:
  - when: {prompt-matches: slow}
    latency: {inter-token-latency: 50ms}
    stream: {stall-after-tokens: 5, stall: 10s}
  - when: {prompt-matches: cut}
    stream: {disconnect-after-tokens: 3}
phases:
  - name: brownout
    start: 30s
    duration: 20s
    latency: {time-to-first-token: 2s}
  - name: later
    after-requests: 100
    latency: {inter-token-latency: {distribution: uniform, min: 1ms, max: 3ms}}
"""


def compiled(time_scale: float | None, text: str = SCENARIO) -> RuntimePlan:
    if time_scale is not None:
        text = text.replace("server: {", f"server: {{time-scale: {time_scale}, ")
    return compile_scenario(load_scenario_text(text, "s.yaml"))


def draws(sampler: Sampler, seed: int = 3, scale: float = 1.0, n: int = 200) -> list[float]:
    rng = random.Random(seed)
    return [sampler.sample(rng, scale) for _ in range(n)]


def assert_scaled(scaled: Sampler, unscaled: Sampler, factor: float) -> None:
    """``scaled`` draws ``factor`` x what ``unscaled`` draws from the same random source, at
    any load factor."""
    for load in (1.0, 1.5):
        expected = [factor * value for value in draws(unscaled, scale=load)]
        assert draws(scaled, scale=load) == pytest.approx(expected)


def test_time_scale_one_compiles_the_plan_of_no_time_scale() -> None:
    plain, explicit = compiled(None), compiled(1.0)
    for field in fields(RuntimePlan):
        if field.name != "scenario":
            assert getattr(explicit, field.name) == getattr(plain, field.name), field.name
    assert plain.time_scale == 1.0
    latency = plain.latency
    samplers = [getattr(latency, f.name) for f in fields(LatencyPlan) if f.init]
    assert not any(isinstance(sampler, TimeScaled) for sampler in samplers)
    assert isinstance(latency.inter_token_latency, Lognormal)
    assert plain.rules[0].stall == 10.0
    assert (plain.phases[0].start, plain.phases[0].duration) == (30.0, 20.0)


def test_constant_latencies_stay_constants_scaled() -> None:
    plan = compiled(0.1, SCENARIO.replace("  time-to-first-token-std-dev: 20ms\n", ""))
    assert plan.latency.time_to_first_token == Constant(pytest.approx(0.02))
    assert plan.latency.prefill_overhead == Constant(pytest.approx(0.002))
    assert plan.latency.prefill_time_per_token == Constant(pytest.approx(25e-6))
    assert plan.latency.kv_cache_transfer_time_per_token == Constant(pytest.approx(0.3e-6))
    assert plan.latency.random, "the other latencies are still drawn"


def test_every_distribution_is_stretched_as_a_whole() -> None:
    base, fast = compiled(None).latency, compiled(0.1).latency
    for name in (
        "time_to_first_token",
        "inter_token_latency",
        "kv_cache_transfer_latency",
        "time_to_generate_image",
    ):
        scaled, unscaled = getattr(fast, name), getattr(base, name)
        assert isinstance(scaled, TimeScaled), name
        assert_scaled(scaled, unscaled, 0.1)
    assert isinstance(base.time_to_first_token, UpstreamNormal)
    assert isinstance(base.kv_cache_transfer_latency, Empirical)


def test_per_token_jitter_is_scaled_and_factors_are_not() -> None:
    plan = compiled(0.1)
    assert plan.latency.prefill_time_std_dev == pytest.approx(0.0005)
    assert plan.latency.kv_cache_transfer_time_std_dev == pytest.approx(0.0001)
    assert plan.latency.time_factor_under_load == 2.0


def test_rules_latency_and_stalls_are_scaled() -> None:
    slow, cut = compiled(0.1).rules
    assert slow.latency is not None
    assert slow.latency.inter_token_latency == Constant(pytest.approx(0.005))
    assert slow.latency.time_to_first_token == TimeScaled(UpstreamNormal(0.2, 0.02), 0.1)
    assert slow.stall == pytest.approx(1.0)
    assert slow.stall_after_tokens == 5
    assert (cut.stall, cut.disconnect_after_tokens) == (0.0, 3)


def test_phase_windows_and_overlays_are_scaled() -> None:
    plan = compiled(0.5)
    brownout, later = plan.phases
    assert (brownout.start, brownout.duration) == (pytest.approx(15.0), pytest.approx(10.0))
    assert (later.start, later.after_requests, later.duration) == (None, 100, None)
    during = phase_plan(plan, (0,))
    assert during.time_scale == 0.5
    assert during.latency.time_to_first_token == TimeScaled(UpstreamNormal(2.0, 0.02), 0.5)
    after = phase_plan(plan, (1,))
    assert_scaled(after.latency.inter_token_latency, Uniform(0.001, 0.003), 0.5)


def test_batched_step_time_and_overhead_are_scaled_but_not_the_jitter() -> None:
    # Per-request timing keys are errors in batched mode: the engine section alone.
    text = (
        "version: 1\nserver: {port: 8000}\nengine:\n  mode: batched\n"
        "  step-time: {base: 10ms, per-context-token: 2ns, jitter: 5}\n"
        "  request-overhead: {base: 4ms, per-input-token: 2us, per-output-token: 1ms}\n"
    )
    plain = compiled(None, text).batched
    fast = compiled(0.25, text).batched
    assert plain is not None and fast is not None
    assert fast.step_time.base == pytest.approx(0.0025)
    assert fast.step_time.per_prefill_token == pytest.approx(plain.step_time.per_prefill_token / 4)
    assert fast.step_time.per_decode_token == pytest.approx(plain.step_time.per_decode_token / 4)
    assert fast.step_time.per_context_token == pytest.approx(0.5e-9)
    assert fast.step_time.jitter == plain.step_time.jitter == pytest.approx(0.05)
    assert fast.request_overhead.base == pytest.approx(0.001)
    assert fast.request_overhead.per_input_token == pytest.approx(0.5e-6)
    assert fast.request_overhead.per_output_token == pytest.approx(0.00025)
    assert fast.max_num_batched_tokens == plain.max_num_batched_tokens == 2048


def test_real_world_settings_are_not_scaled() -> None:
    plan = compiled(0.1)
    assert plan.time_scale == 0.1
    assert plan.fake_metrics_refresh_interval == 0.25
    assert plan.scenario.server.shutdown_timeout == 30.0
    assert plan.scenario.server.startup_duration == 2.0, "the scenario keeps what it says"


def test_time_scaled_sampler_wrapping() -> None:
    lognormal = Lognormal.from_median_p99(0.012, 0.04)
    assert time_scaled(lognormal, 1.0) is lognormal
    assert time_scaled(Constant(0.2), 3.0) == Constant(pytest.approx(0.6))
    wrapped = time_scaled(lognormal, 3.0)
    assert wrapped == TimeScaled(lognormal, 3.0)
    assert_scaled(wrapped, lognormal, 3.0)
    assert wrapped.describe() == "lognormal median 12ms p99 40ms, x3 (time-scale)"
