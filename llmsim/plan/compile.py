"""``compile_scenario``: from a validated scenario to a ``RuntimePlan``.

``server.time-scale`` is applied here and nowhere else: every simulated duration of the plan
(latency samplers, per-token jitter, rule stalls, phase windows, the batched engine's step time
and request overhead) comes out multiplied by it. Real-world durations (fake-metrics refresh,
shutdown timeout) are not scaled. With time-scale 1 the plan is exactly the unscaled one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import replace

from llmsim.errors import ScenarioError, ScenarioProblem
from llmsim.plan.phases import PhaseWindow, windows
from llmsim.plan.plan import (
    BatchedPlan,
    KVPlan,
    LatencyPlan,
    ModelPlan,
    RequestOverhead,
    RuntimePlan,
    StepTimeModel,
)
from llmsim.plan.rules import CompiledRule, compile_rule
from llmsim.plan.samplers import build_sampler
from llmsim.scenario.checks import merge
from llmsim.scenario.kv_cache import KVCacheSection
from llmsim.scenario.loader import InvalidScenario, describe_validation_errors, validate_data
from llmsim.scenario.model import EngineSection, LatencySection, Scenario
from llmsim.scenario.overlays import overlay_data, section_data
from llmsim.scenario.profiles import ProfileError, load_profile
from llmsim.scenario.sections import (
    DEFAULT_MAX_NUM_BATCHED_TOKENS,
    DEFAULT_STEP_TIME,
    fields_of,
)

log = logging.getLogger("llmsim")


def compile_latency(latency: LatencySection, time_scale: float = 1.0) -> LatencyPlan:
    """Samplers for every latency key, and the calculator rules resolved (LAT-2, LAT-4);
    every duration multiplied by ``time_scale``."""
    legacy = latency.latency_calculator in (None, "")
    per_token = latency.latency_calculator == "per-token"
    return LatencyPlan(
        time_to_first_token=build_sampler(
            latency.time_to_first_token, latency.time_to_first_token_std_dev, time_scale
        ),
        inter_token_latency=build_sampler(
            latency.inter_token_latency, latency.inter_token_latency_std_dev, time_scale
        ),
        per_token_prefill=per_token
        or (legacy and _is_zero(latency.time_to_first_token, latency.time_to_first_token_std_dev)),
        prefill_overhead=build_sampler(latency.prefill_overhead, time_scale=time_scale),
        prefill_time_per_token=build_sampler(latency.prefill_time_per_token, time_scale=time_scale),
        prefill_time_std_dev=latency.prefill_time_std_dev * time_scale,
        per_token_transfer=per_token
        or (
            legacy
            and _is_zero(
                latency.kv_cache_transfer_latency, latency.kv_cache_transfer_latency_std_dev
            )
        ),
        kv_cache_transfer_latency=build_sampler(
            latency.kv_cache_transfer_latency, latency.kv_cache_transfer_latency_std_dev, time_scale
        ),
        kv_cache_transfer_time_per_token=build_sampler(
            latency.kv_cache_transfer_time_per_token, time_scale=time_scale
        ),
        kv_cache_transfer_time_std_dev=latency.kv_cache_transfer_time_std_dev * time_scale,
        time_to_generate_image=build_sampler(
            latency.time_to_generate_image, latency.time_to_generate_image_std_dev, time_scale
        ),
        time_factor_under_load=latency.time_factor_under_load,
    )


def compile_batched(engine: EngineSection, time_scale: float = 1.0) -> BatchedPlan | None:
    """The engine loop's settings with ``engine.mode: batched`` (None otherwise). Each
    coefficient comes from the scenario's key if set, else from the profile, else from the
    default step time (no request overhead); durations multiplied by ``time_scale``."""
    if engine.mode != "batched":
        return None
    step = dict(DEFAULT_STEP_TIME)
    overhead = {"base": 0.0, "per_input_token": 0.0, "per_output_token": 0.0}
    budget = DEFAULT_MAX_NUM_BATCHED_TOKENS
    if engine.profile is not None:
        try:
            profile = load_profile(engine.profile).profile
        except ProfileError as exc:
            problem = ScenarioProblem("<scenario>", 1, 1, "engine.profile", str(exc))
            raise ScenarioError([problem]) from None
        step = fields_of(profile.step_time)
        overhead = fields_of(profile.request_overhead)
        budget = profile.engine.max_num_batched_tokens or budget
    step.update(engine.step_time.given())
    overhead.update(engine.request_overhead.given())
    if engine.max_num_batched_tokens is not None:
        budget = engine.max_num_batched_tokens
    return BatchedPlan(
        step_time=StepTimeModel(
            base=step["base"] * time_scale,
            per_prefill_token=step["per_prefill_token"] * time_scale,
            per_decode_token=step["per_decode_token"] * time_scale,
            per_context_token=step["per_context_token"] * time_scale,
            jitter=step["jitter"] / 100.0,
        ),
        request_overhead=RequestOverhead(
            base=overhead["base"] * time_scale,
            per_input_token=overhead["per_input_token"] * time_scale,
            per_output_token=overhead["per_output_token"] * time_scale,
        ),
        max_num_batched_tokens=budget,
        profile=engine.profile,
    )


def _scaled_windows(scenario: Scenario, time_scale: float) -> tuple[PhaseWindow, ...]:
    """The phase windows, their start and duration multiplied by ``time_scale``."""
    found = windows(scenario.phases)
    if time_scale == 1.0:
        return found
    return tuple(
        replace(
            window,
            start=None if window.start is None else window.start * time_scale,
            duration=None if window.duration is None else window.duration * time_scale,
        )
        for window in found
    )


def _compile_rules(scenario: Scenario, time_scale: float) -> tuple[CompiledRule, ...]:
    """The rules, their latency overlays merged and compiled, stalls multiplied by
    ``time_scale``."""
    compiled = []
    for index, rule in enumerate(scenario.rules):
        latency = (
            compile_latency(merge(scenario.latency, rule.latency), time_scale)
            if rule.latency is not None
            else None
        )
        one = compile_rule(index, rule, latency)
        if time_scale != 1.0 and one.stall:
            one = replace(one, stall=one.stall * time_scale)
        compiled.append(one)
    return tuple(compiled)


def phase_plan(base: RuntimePlan, active: tuple[int, ...]) -> RuntimePlan:
    """``base`` with the overlays of the ``active`` phases applied, later ones winning. Each
    phase alone was validated with the scenario; if a combination is not valid, the latest
    phase alone applies (and a warning says so)."""
    scenario = base.scenario
    data = section_data(scenario)
    for index in active:
        phase = scenario.phases[index]
        for key in ("latency", "failures", "responses"):
            data[key].update(overlay_data(getattr(phase, key)))
    try:
        merged = validate_data(data)
    except InvalidScenario as exc:
        log.warning(
            "phases %s together are not valid (%s); applying %s alone",
            [scenario.phases[i].name for i in active],
            "; ".join(describe_validation_errors(exc)),
            scenario.phases[active[-1]].name,
        )
        return phase_plan(base, active[-1:]) if len(active) > 1 else base
    return compile_scenario(merged, default_seed=base.seed)


def _is_zero(value: object, std_dev: float) -> bool:
    """Upstream's legacy test: a plain duration of 0 with no jitter."""
    return isinstance(value, float) and value == 0 and std_dev == 0


def offset_endpoint(endpoint: str, offset: int) -> str:
    """A ``tcp://host:port`` endpoint with its port moved up by ``offset`` (ZMQ-6); other
    endpoints, and offset 0, unchanged."""
    head, _, port = endpoint.rpartition(":")
    if offset == 0 or not endpoint.startswith("tcp://") or not port.isdigit():
        return endpoint
    return f"{head}:{int(port) + offset}"


def compile_kv(section: KVCacheSection, environ: Mapping[str, str], rank: int = 0) -> KVPlan | None:
    """The KV plan when the cache is on; the hash seed falls back to $PYTHONHASHSEED; rank
    ``rank`` publishes and replays on ports offset by its rank."""
    if not section.enable_kvcache:
        return None
    hash_seed = section.hash_seed
    if hash_seed is None:
        hash_seed = environ.get("PYTHONHASHSEED", "")
    return KVPlan(
        capacity=section.kv_cache_size,
        block_size=section.block_size,
        hash_seed=hash_seed,
        global_cache_hit_threshold=section.global_cache_hit_threshold,
        zmq_endpoint=offset_endpoint(section.zmq_endpoint, rank),
        event_batch_size=section.event_batch_size,
        map_event_format=section.use_vllm_map_event_format,
        replay_endpoint=offset_endpoint(section.kv_events_replay_endpoint, rank),
        replay_queue_size=section.kv_events_replay_queue_size,
    )


def compile_scenario(
    scenario: Scenario,
    *,
    default_seed: int | None = None,
    environ: Mapping[str, str] | None = None,
    dp_rank: int | None = None,
) -> RuntimePlan:
    """Resolve defaults and build samplers; the seed defaults to the current time in ns, and
    environment-dependent values are read from ``environ`` (default: the process's).
    ``dp_rank`` compiles rank ``dp_rank`` of ``data-parallel-size`` ranks: it serves on the
    port offset by its rank (DP-1); otherwise the rank is ``data-parallel-rank`` (0 if unset),
    whose port is the scenario's."""
    latency = scenario.latency
    tokenizer = scenario.model.tokenizer
    seed = scenario.seed
    if seed is None:
        seed = default_seed if default_seed is not None else time.time_ns()
    server = scenario.server
    time_scale = server.time_scale
    rank = dp_rank if dp_rank is not None else max(server.data_parallel_rank, 0)
    return RuntimePlan(
        scenario=scenario,
        scenario_name=scenario.name,
        seed=seed,
        host=server.host,
        port=server.port + (dp_rank or 0),
        rank=rank,
        model=ModelPlan(
            name=scenario.model.name,
            served_names=tuple(scenario.model.served_names),
            max_model_len=scenario.model.max_model_len,
            tokenizer_path=None if tokenizer == "simulated" else tokenizer.path,
            tokenizer_model_id=None if tokenizer == "simulated" else tokenizer.model_id,
            media_tokens={
                "image": scenario.model.image_tokens,
                "audio": scenario.model.audio_tokens,
                "video": scenario.model.video_tokens,
            },
        ),
        max_num_seqs=scenario.engine.max_num_seqs,
        max_waiting_queue_length=scenario.engine.max_waiting_queue_length,
        latency=compile_latency(latency, time_scale),
        response_mode=scenario.responses.mode,
        dataset=scenario.responses.dataset,
        fake_metrics=scenario.metrics.fake_metrics,
        kv=compile_kv(scenario.kv_cache, os.environ if environ is None else environ, rank),
        enable_sleep_mode=scenario.server.enable_sleep_mode,
        failure_injection_rate=scenario.failures.failure_injection_rate,
        failure_types=tuple(scenario.failures.failure_types),
        rules=_compile_rules(scenario, time_scale),
        phases=_scaled_windows(scenario, time_scale),
        max_loras=scenario.lora.max_loras,
        lora_modules=tuple((m.name, m.path) for m in scenario.lora.lora_modules),
        fake_metrics_refresh_interval=scenario.metrics.fake_metrics_refresh_interval,
        batched=compile_batched(scenario.engine, time_scale),
        time_scale=time_scale,
    )
