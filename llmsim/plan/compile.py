"""``compile_scenario``: from a validated scenario to a ``RuntimePlan``."""

from __future__ import annotations

import time

from llmsim.plan.plan import LatencyPlan, ModelPlan, RuntimePlan
from llmsim.plan.samplers import build_sampler
from llmsim.scenario.model import Scenario


def compile_scenario(scenario: Scenario, *, default_seed: int | None = None) -> RuntimePlan:
    """Resolve defaults and build samplers; the seed defaults to the current time in ns."""
    latency = scenario.latency
    seed = scenario.seed
    if seed is None:
        seed = default_seed if default_seed is not None else time.time_ns()
    return RuntimePlan(
        scenario_name=scenario.name,
        seed=seed,
        host=scenario.server.host,
        port=scenario.server.port,
        model=ModelPlan(
            name=scenario.model.name,
            served_names=tuple(scenario.model.served_names),
            max_model_len=scenario.model.max_model_len,
        ),
        max_num_seqs=scenario.engine.max_num_seqs,
        latency=LatencyPlan(
            time_to_first_token=build_sampler(
                latency.time_to_first_token, latency.time_to_first_token_std_dev
            ),
            inter_token_latency=build_sampler(
                latency.inter_token_latency, latency.inter_token_latency_std_dev
            ),
        ),
        response_mode=scenario.responses.mode,
    )
