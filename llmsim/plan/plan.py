"""The runtime plan's frozen dataclasses: what the server and the engine execute.

A plan is built once from a scenario and never changes; a runtime change builds a new one. The
engine reads it on every request, so it holds resolved values and ready samplers, not raw keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Literal

from llmsim.plan.samplers import Constant, Sampler
from llmsim.scenario.fake_metrics import FakeMetrics
from llmsim.scenario.model import Scenario
from llmsim.scenario.sections import DatasetSource

if TYPE_CHECKING:
    from llmsim.plan.phases import PhaseWindow
    from llmsim.plan.rules import CompiledRule


@dataclass(frozen=True, slots=True)
class ModelPlan:
    """The served model: its name, the names the API answers to, and its context window."""

    name: str
    served_names: tuple[str, ...]
    max_model_len: int
    media_tokens: Mapping[str, int]
    """Prompt tokens per media item, by kind (image, audio, video)."""
    tokenizer_path: str | None = None
    """A real tokenizer's file or directory (None: see ``tokenizer_model_id``)."""
    tokenizer_model_id: str | None = None
    """A real tokenizer's model id (both None: the simulated tokenizer)."""

    @property
    def display_name(self) -> str:
        """The name shown in responses for requests to the base model (the first served name)."""
        return self.served_names[0]


NO_TIME = Constant(0.0)


@dataclass(frozen=True, slots=True)
class LatencyPlan:
    """Samplers and resolved rules for the request-level latencies (LAT-1 to LAT-4)."""

    time_to_first_token: Sampler
    inter_token_latency: Sampler
    per_token_prefill: bool = False
    """TTFT from prefill-overhead + uncached tokens x prefill-time-per-token (else constant)."""
    prefill_overhead: Sampler = NO_TIME
    prefill_time_per_token: Sampler = NO_TIME
    prefill_time_std_dev: float = 0.0
    per_token_transfer: bool = False
    """Remote-prefill TTFT from prompt tokens x kv-cache-transfer-time-per-token."""
    kv_cache_transfer_latency: Sampler = NO_TIME
    kv_cache_transfer_time_per_token: Sampler = NO_TIME
    kv_cache_transfer_time_std_dev: float = 0.0
    time_to_generate_image: Sampler = NO_TIME
    time_factor_under_load: float = 1.0
    random: bool = field(init=False)
    """Whether any of these latencies is drawn at random (else nothing is drawn)."""

    def __post_init__(self) -> None:
        samplers = (getattr(self, f.name) for f in fields(self) if f.init)
        drawn = any(not isinstance(value, (Constant, bool, float, int)) for value in samplers)
        jitter = self.prefill_time_std_dev > 0 or self.kv_cache_transfer_time_std_dev > 0
        object.__setattr__(self, "random", drawn or jitter)


@dataclass(frozen=True, slots=True)
class KVPlan:
    """The simulated prefix cache and its events (present only with enable-kvcache)."""

    capacity: int
    block_size: int
    hash_seed: str
    global_cache_hit_threshold: float
    zmq_endpoint: str
    event_batch_size: int
    map_event_format: bool
    replay_endpoint: str
    replay_queue_size: int


@dataclass(frozen=True, slots=True)
class StepTimeModel:
    """The batched engine's step duration (BLIS's beta coefficients), in seconds:
    ``base + per_prefill_token x prompt tokens computed in the step + per_decode_token x
    decoding sequences in the step + per_context_token x context tokens those sequences
    attend to``, times a normal jitter of relative std-dev ``jitter`` (clamped at +-3 sigma)."""

    base: float
    per_prefill_token: float
    per_decode_token: float
    per_context_token: float = 0.0
    jitter: float = 0.0


@dataclass(frozen=True, slots=True)
class RequestOverhead:
    """Per-request time outside the engine's steps (BLIS's alpha coefficients), in seconds: a
    request enters the waiting queue ``base + per_input_token x prompt tokens`` after it
    arrives; its token k (from 0) reaches the client ``(k + 1) x per_output_token`` after the
    step that emitted it (as BLIS adds alpha2 to the TTFT and to every inter-token gap)."""

    base: float = 0.0
    per_input_token: float = 0.0
    per_output_token: float = 0.0


@dataclass(frozen=True, slots=True)
class BatchedPlan:
    """``engine.mode: batched``: one engine loop per rank (continuous batching)."""

    step_time: StepTimeModel
    request_overhead: RequestOverhead
    max_num_batched_tokens: int
    profile: str | None = None
    """The profile the coefficients came from (its name or path), if any."""


@dataclass(frozen=True, slots=True)
class RuntimePlan:
    """Everything a running server needs, resolved from one scenario."""

    scenario: Scenario
    """The validated scenario this plan was compiled from (for runtime changes and reports)."""
    scenario_name: str
    seed: int
    host: str
    port: int
    """The port this rank serves on."""
    model: ModelPlan
    max_num_seqs: int
    max_waiting_queue_length: int
    latency: LatencyPlan
    response_mode: Literal["random", "echo"]
    dataset: DatasetSource | None = None
    fake_metrics: FakeMetrics | None = None
    fake_metrics_refresh_interval: float = 0.1
    kv: KVPlan | None = None
    enable_sleep_mode: bool = False
    max_loras: int = 1
    lora_modules: tuple[tuple[str, str], ...] = ()
    """``(name, path)`` of the adapters available from the start."""
    failure_injection_rate: float = 0.0
    failure_types: tuple[str, ...] = ()
    rules: tuple[CompiledRule, ...] = ()
    phases: tuple[PhaseWindow, ...] = ()
    rank: int = 0
    """This process's data-parallel rank (in KV-event batches, headers and /query)."""
    batched: BatchedPlan | None = None
    """The engine loop's settings with ``engine.mode: batched``; None: upstream's per-request
    model."""
    time_scale: float = 1.0
    """``server.time-scale``: every simulated duration in this plan is already multiplied by
    it (the compiler applies it); kept for reports."""
