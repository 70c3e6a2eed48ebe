"""A readable rendering of a ``RuntimePlan`` for ``llmsim plan``."""

from __future__ import annotations

from llmsim.plan.plan import RuntimePlan
from llmsim.scenario.units import format_duration


def describe_plan(plan: RuntimePlan, seed_given: bool) -> str:
    """The plan as indented text, one resolved setting per line."""
    seed = str(plan.seed) if seed_given else "start time in ns (no seed in the scenario)"
    latency = plan.latency
    if latency.per_token_prefill:
        ttft = (
            f"per-token: {latency.prefill_overhead.describe()} + prompt tokens x "
            f"{latency.prefill_time_per_token.describe()}"
        )
        if latency.prefill_time_std_dev:
            ttft += f", jitter {format_duration(latency.prefill_time_std_dev)}"
    else:
        ttft = f"constant: {latency.time_to_first_token.describe()}"
    if latency.per_token_transfer:
        remote = f"prompt tokens x {latency.kv_cache_transfer_time_per_token.describe()}"
        if latency.kv_cache_transfer_time_std_dev:
            remote += f", jitter {format_duration(latency.kv_cache_transfer_time_std_dev)}"
    else:
        remote = latency.kv_cache_transfer_latency.describe()
    fake = plan.fake_metrics
    fake_keys = (
        sorted(k for k, v in fake.model_dump(by_alias=True).items() if v is not None)
        if fake
        else []
    )
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
        f"  max-waiting-queue-length: {plan.max_waiting_queue_length}",
        "latency:",
        f"  time-to-first-token: {ttft}",
        f"  inter-token-latency: {latency.inter_token_latency.describe()}",
        f"  remote prefill (do_remote_prefill): {remote}",
        f"  time-factor-under-load: x{latency.time_factor_under_load:g} with every slot busy",
        "responses:",
        f"  mode: {plan.response_mode}",
        "metrics:",
        "  fake: " + (", ".join(fake_keys) if fake_keys else "no (real metrics)"),
    ]
    return "\n".join(lines) + "\n"
