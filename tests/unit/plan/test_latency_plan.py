"""LatencyPlan.random: whether serving a request draws any latency at random."""

from __future__ import annotations

from dataclasses import replace

from llmsim.plan.plan import LatencyPlan
from llmsim.plan.samplers import Constant, Uniform


def test_constant_latencies_draw_nothing() -> None:
    plan = LatencyPlan(Constant(0.1), Constant(0.01), time_factor_under_load=2.0)
    assert plan.random is False


def test_any_random_sampler_or_jitter_draws() -> None:
    plan = LatencyPlan(Constant(0.1), Constant(0.01))
    assert replace(plan, inter_token_latency=Uniform(0.005, 0.015)).random
    assert replace(plan, time_to_generate_image=Uniform(0.1, 0.2)).random
    assert replace(plan, per_token_prefill=True, prefill_time_std_dev=0.002).random
    assert replace(plan, per_token_transfer=True, kv_cache_transfer_time_std_dev=0.1).random
