"""A readable rendering of a ``RuntimePlan`` for ``llmsim plan``."""

from __future__ import annotations

from llmsim.plan.plan import RuntimePlan


def describe_plan(plan: RuntimePlan, seed_given: bool) -> str:
    """The plan as indented text, one resolved setting per line."""
    seed = str(plan.seed) if seed_given else "start time in ns (no seed in the scenario)"
    lines = [
        f"scenario: {plan.scenario_name}",
        f"seed: {seed}",
        "model:",
        f"  name: {plan.model.name}",
        f"  served names: {', '.join(plan.model.served_names)}",
        f"  displayed as: {plan.model.display_name}",
        f"  max-model-len: {plan.model.max_model_len} tokens",
        "server:",
        f"  listen: {plan.host}:{plan.port}",
        "engine:",
        "  mode: per-request (upstream semantics)",
        f"  max-num-seqs: {plan.max_num_seqs}",
        "latency:",
        f"  time-to-first-token: {plan.latency.time_to_first_token.describe()}",
        f"  inter-token-latency: {plan.latency.inter_token_latency.describe()}",
        "responses:",
        f"  mode: {plan.response_mode}",
    ]
    return "\n".join(lines) + "\n"
