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
        "failures:",
        f"  rate: {plan.failure_injection_rate:g}% of "
        + (", ".join(plan.failure_types) if plan.failure_types else "all six types"),
        *_rules(plan),
        *_timeline(plan),
    ]
    return "\n".join(lines) + "\n"


def _rules(plan: RuntimePlan) -> list[str]:
    lines = ["rules:" if plan.rules else "rules: none"]
    for rule, declared in zip(plan.rules, plan.scenario.rules, strict=True):
        when = declared.when.model_dump(by_alias=True, exclude_none=True)
        effects = [
            name
            for name, present in (
                ("reply", declared.reply is not None),
                (f"error {declared.error}", declared.error is not None),
                ("latency", declared.latency is not None),
                ("stream faults", declared.stream is not None),
            )
            if present
        ]
        conditions = ", ".join(f"{k}={v}" for k, v in when.items()) or "every request"
        lines.append(f"  {rule.label}: when {conditions} -> {', '.join(effects) or 'nothing'}")
    return lines


def _timeline(plan: RuntimePlan) -> list[str]:
    lines = ["phases:" if plan.phases else "phases: none"]
    for index, (window, declared) in enumerate(zip(plan.phases, plan.scenario.phases, strict=True)):
        if window.start is not None:
            begins = f"at {format_duration(window.start)}"
        else:
            begins = f"with request {(window.after_requests or 0) + 1}"
        if window.duration is not None:
            lasts = f"for {format_duration(window.duration)}"
        elif index + 1 < len(plan.phases):
            lasts = f"until {plan.phases[index + 1].name}"
        else:
            lasts = "to the end"
        changes = [k for k in ("latency", "failures", "responses") if getattr(declared, k)]
        lines.append(
            f"  {window.name}: {begins}, {lasts}; overlays {', '.join(changes) or 'nothing'}"
        )
    return lines
