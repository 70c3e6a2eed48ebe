"""A readable rendering of a ``RuntimePlan`` for ``llmsim plan``."""

from __future__ import annotations

from llmsim.plan.plan import BatchedPlan, RuntimePlan
from llmsim.scenario.model import Scenario
from llmsim.scenario.profiles import ProfileError, load_profile
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
        f"  time-scale: {_time_scale(plan.time_scale)}",
        "engine:",
        *_engine(plan),
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


def scenario_summary(scenario: Scenario) -> str:
    """One line on how a validated scenario paces tokens, for ``llmsim validate``:
    ``engine batched, profile llama-3.1-8b-h100-tp1, step-time base overridden; time-scale 0.1``.
    """
    engine = scenario.engine
    parts = [f"engine {engine.mode}"]
    if engine.mode == "batched":
        parts.append(f"profile {engine.profile}" if engine.profile else "default step time")
        overridden = [
            f"{section} {', '.join(key.replace('_', '-') for key in given)}"
            for section, given in (
                ("step-time", engine.step_time.given()),
                ("request-overhead", engine.request_overhead.given()),
            )
            if given
        ]
        if overridden:
            parts.append(f"set: {'; '.join(overridden)}")
    text = ", ".join(parts)
    scale = scenario.server.time_scale
    return text + (f"; time-scale {scale:g}" if scale != 1.0 else "")


def _time_scale(scale: float) -> str:
    if scale == 1.0:
        return "1 (real time)"
    pace = f"{1 / scale:g} times faster" if scale < 1 else f"{scale:g} times slower"
    return f"{scale:g} ({pace} than real time; every duration below is already scaled)"


def _engine(plan: RuntimePlan) -> list[str]:
    batched = plan.batched
    lines = [
        "  mode: per-request (upstream semantics)"
        if batched is None
        else "  mode: batched (an engine loop: each step releases the tokens of every running"
        " request)",
        f"  max-num-seqs: {plan.max_num_seqs}",
        f"  max-waiting-queue-length: {plan.max_waiting_queue_length}",
    ]
    if batched is not None:
        lines += _batched(batched)
    return lines


def _batched(batched: BatchedPlan) -> list[str]:
    lines = [f"  max-num-batched-tokens: {batched.max_num_batched_tokens}"]
    if batched.profile is None:
        lines.append("  profile: none (default step time, overridden by engine.step-time keys)")
    else:
        try:
            profile = load_profile(batched.profile).profile
        except ProfileError as exc:
            lines.append(f"  profile: {batched.profile} ({exc})")
        else:
            lines.append(f"  profile: {batched.profile}: {profile.summary()}")
            measured = profile.engine.model_dump(by_alias=True, exclude_none=True)
            if measured:
                settings = ", ".join(f"{key} {value}" for key, value in measured.items())
                lines.append(f"    measured with {settings}")
    step = batched.step_time
    terms = [
        format_duration(step.base),
        f"{format_duration(step.per_prefill_token)} x prefill tokens",
        f"{format_duration(step.per_decode_token)} x decoding sequences",
    ]
    if step.per_context_token:
        terms.append(f"{format_duration(step.per_context_token)} x context tokens")
    jitter = f", jitter {step.jitter * 100:g}% (normal)" if step.jitter else ""
    lines.append(f"  step time: {' + '.join(terms)}{jitter}")
    overhead = batched.request_overhead
    lines.append(
        f"  request overhead: {format_duration(overhead.base)} + "
        f"{format_duration(overhead.per_input_token)} x prompt tokens before queueing, "
        f"{format_duration(overhead.per_output_token)} more per output token to the client"
    )
    return lines


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
