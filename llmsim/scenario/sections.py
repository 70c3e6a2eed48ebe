"""The scenario's basic sections: model, server, engine, latency, responses.

Leaf keys keep the upstream simulator's kebab-case names; defaults are the upstream defaults.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from llmsim.scenario.base import Section
from llmsim.scenario.distributions import UPSTREAM_MAX_STD_DEV_SHARE, LatencyValue
from llmsim.scenario.failures import Percentage
from llmsim.scenario.profiles import ProfileError, check_jitter, load_profile
from llmsim.scenario.units import Duration, format_duration

DEFAULT_MODEL_NAME = "Qwen/Qwen2.5-1.5B-Instruct"


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


class TokenizerSource(Section):
    """A real tokenizer: a ``tokenizer.json`` or model directory, or a model id."""

    path: str | None = Field(default=None, description="tokenizer.json, or a model directory.")
    model_id: str | None = Field(
        default=None, description="A HuggingFace model id, looked up in the local cache."
    )

    @model_validator(mode="after")
    def _one_source(self) -> TokenizerSource:
        if (self.path is None) == (self.model_id is None):
            raise ValueError("give either path or model-id")
        return self


class ModelSection(Section):
    """The served model."""

    name: str = Field(default=DEFAULT_MODEL_NAME, min_length=1, description="upstream `model`")
    served_model_name: Annotated[
        list[Annotated[str, Field(min_length=1)]] | None,
        BeforeValidator(_one_or_many),
    ] = Field(
        default=None,
        min_length=1,
        description="Names the API answers to; the first is shown in responses. Default: name.",
    )
    max_model_len: int = Field(default=1024, ge=1, description="Context window in tokens.")
    tokenizer: Literal["simulated"] | TokenizerSource = Field(
        default="simulated",
        description="simulated (upstream's regex split), or {path} / {model-id} of a real one.",
    )
    image_tokens: int = Field(
        default=256, ge=1, description="Prompt tokens one image counts (as a vision encoder's)."
    )
    audio_tokens: int = Field(default=128, ge=1, description="Prompt tokens one audio clip counts.")
    video_tokens: int = Field(default=1024, ge=1, description="Prompt tokens one video counts.")
    default_embedding_dimensions: int = Field(
        default=384,
        ge=1,
        le=65536,
        description="Length of /v1/embeddings vectors when a request gives no dimensions.",
    )

    @property
    def served_names(self) -> list[str]:
        """The names the API answers to, in order; the first one is displayed."""
        return self.served_model_name or [self.name]


class ServerSection(Section):
    """Where the server listens."""

    host: str = Field(default="0.0.0.0", min_length=1, description="Address to bind.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port to listen on.")
    enable_sleep_mode: bool = Field(
        default=False,
        description="Let POST /sleep put the engine to sleep (also needs VLLM_SERVER_DEV_MODE=1).",
    )
    data_parallel_size: int = Field(
        default=1, ge=1, le=8, description="Rank processes, on consecutive ports from port."
    )
    data_parallel_rank: int = Field(
        default=-1,
        ge=-1,
        le=7,
        description="This process is this one rank (KV-event ports offset by it); -1: none.",
    )
    startup_duration: Duration = Field(
        default=0.0, description="/health/ready answers 503 for this long after start."
    )
    shutdown_timeout: Duration = Field(
        default=30.0,
        description="On SIGTERM/SIGINT, how long in-flight requests may take to finish.",
    )
    enable_request_id_headers: bool = Field(
        default=False, description="Use and echo X-Request-Id as the request id."
    )
    max_request_body_size_mb: int = Field(
        default=4, ge=1, le=512, description="Larger request bodies get 413."
    )
    api_key: str | None = Field(
        default=None,
        min_length=1,
        description='/v1/* and generation endpoints need "Authorization: Bearer <key>".',
    )
    ssl_certfile: str | None = Field(default=None, description="Serve HTTPS with this cert.")
    ssl_keyfile: str | None = Field(default=None, description="The key of ssl-certfile.")
    self_signed_certs: bool = Field(
        default=False, description="Serve HTTPS with a certificate generated at start."
    )
    log_http: bool = Field(
        default=False,
        description="Log every HTTP request (method, path, status): the access log.",
    )
    time_scale: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        allow_inf_nan=False,
        description=(
            "Every simulated duration (latencies, step times, stalls, phase times,"
            " startup-duration) is multiplied by this: 0.1 runs ten times faster than real time."
        ),
    )

    @model_validator(mode="after")
    def _tls(self) -> ServerSection:
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("give both ssl-certfile and ssl-keyfile, or neither")
        if self.self_signed_certs and self.ssl_certfile is not None:
            raise ValueError("self-signed-certs does not go with ssl-certfile/ssl-keyfile")
        if self.data_parallel_rank >= 0 and self.data_parallel_size > 1:
            raise ValueError("data-parallel-rank runs one rank: data-parallel-size must be 1")
        return self


def fields_of(section: Section, given_only: bool = False) -> dict[str, Any]:
    """A section's values by field name, as Python values (durations in seconds: unlike
    ``model_dump``, no serializer runs); ``given_only``: the ones that are not None."""
    values = {name: getattr(section, name) for name in type(section).model_fields}
    return {k: v for k, v in values.items() if v is not None} if given_only else values


DEFAULT_MAX_NUM_BATCHED_TOKENS = 2048
"""vLLM V1's token budget per step for online serving."""

DEFAULT_STEP_TIME: dict[str, float] = {
    "base": 0.005,
    "per_prefill_token": 50e-6,
    "per_decode_token": 200e-6,
    "per_context_token": 0.0,
    "jitter": 0.0,
}
"""The batched engine's step time with no profile (seconds; jitter in percent)."""


class StepTimeSection(Section):
    """batched: one engine step's duration; each key set overrides the profile's.

    Without a profile, unset keys take the default step time: 5ms + 50us x prefill tokens +
    200us x decoding sequences, no jitter.
    """

    base: Duration | None = Field(
        default=None, description="Fixed time of every step. Default: the profile's, else 5ms."
    )
    per_prefill_token: Duration | None = Field(
        default=None,
        description="Per prompt token computed in the step. Default: the profile's, else 50us.",
    )
    per_decode_token: Duration | None = Field(
        default=None,
        description="Per sequence decoding in the step. Default: the profile's, else 200us.",
    )
    per_context_token: Duration | None = Field(
        default=None,
        description="Per context token the decoding sequences attend to. Default: profile's, or 0.",
    )
    jitter: Percentage | None = Field(
        default=None,
        description="Relative std-dev of a step (normal), at most 30%. Default: profile's, or 0.",
    )

    _jitter = field_validator("jitter")(check_jitter)

    def given(self) -> dict[str, float]:
        """The keys set, by field name."""
        return fields_of(self, given_only=True)


class RequestOverheadSection(Section):
    """batched: per-request time outside the steps; each key set overrides the profile's.

    Without a profile, unset keys are 0.
    """

    base: Duration | None = Field(
        default=None, description="From arrival to the waiting queue. Default: profile's, or 0."
    )
    per_input_token: Duration | None = Field(
        default=None,
        description="Arrival to the waiting queue, per prompt token. Default: profile's, or 0.",
    )
    per_output_token: Duration | None = Field(
        default=None,
        description=(
            "Output processing per token (BLIS's alpha2): token k is visible (k + 1) x this"
            " after its step. Default: profile's, or 0."
        ),
    )

    def given(self) -> dict[str, float]:
        """The keys set, by field name."""
        return fields_of(self, given_only=True)


class EngineSection(Section):
    """The simulated engine: its capacity, and how it paces tokens."""

    max_num_seqs: int = Field(default=5, ge=1, description="Requests running at once.")
    max_waiting_queue_length: int = Field(
        default=1000,
        ge=0,
        description="Requests that may wait for a slot; more are rejected with 429. 0: no queue.",
    )
    mode: Literal["per-request", "batched"] = Field(
        default="per-request",
        description=(
            "per-request: upstream's model (TTFT and ITL sampled per request); batched: an"
            " engine loop whose steps release the tokens of every running request together."
        ),
    )
    max_num_batched_tokens: int | None = Field(
        default=None,
        ge=1,
        description=(
            "batched: tokens computed per step (chunked prefill). Default: the profile's, else"
            f" {DEFAULT_MAX_NUM_BATCHED_TOKENS}."
        ),
    )
    step_time: StepTimeSection = StepTimeSection()
    request_overhead: RequestOverheadSection = RequestOverheadSection()
    profile: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "batched: a shipped profile's name (llmsim/profiles/), or the path of a profile"
            " file (relative to the working directory)."
        ),
    )

    @field_validator("max_num_batched_tokens", "step_time", "request_overhead", "profile")
    @classmethod
    def _batched_only(cls, value: object, info: ValidationInfo) -> object:
        if info.data.get("mode", "batched") == "batched" or value is None:
            return value
        if isinstance(value, StepTimeSection | RequestOverheadSection) and not value.given():
            return value
        raise ValueError(
            "applies to engine.mode: batched (engine.mode is per-request): set"
            " engine.mode: batched, or remove this key"
        )

    @field_validator("profile")
    @classmethod
    def _profile_loads(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                load_profile(value)
            except ProfileError as exc:
                raise ValueError(str(exc)) from None
        return value


def check_std_dev(std_dev: float, info: ValidationInfo) -> float:
    """Upstream's rule for ``<base>-std-dev``: only beside a duration, at most 30% of it."""
    assert info.field_name is not None
    base_key = info.field_name.removesuffix("_std_dev")
    if std_dev == 0 or base_key not in info.data:
        return std_dev
    base = info.data[base_key]
    name = base_key.replace("_", "-")
    if not isinstance(base, float):
        raise ValueError(
            f"{name}-std-dev applies to a duration; put the spread in the distribution"
        )
    if std_dev > UPSTREAM_MAX_STD_DEV_SHARE * base + 1e-12:
        raise ValueError(f"must be at most 30% of {name} ({format_duration(base)})")
    return std_dev


def check_std_dev_beside_durations(std_dev: float, info: ValidationInfo) -> float:
    """A per-token std-dev jitters a computed time: only plain durations may feed it."""
    if std_dev == 0:
        return std_dev
    bases = {
        "prefill_time_std_dev": ("prefill_overhead", "prefill_time_per_token"),
        "kv_cache_transfer_time_std_dev": ("kv_cache_transfer_time_per_token",),
    }
    assert info.field_name is not None
    for base_key in bases[info.field_name]:
        if base_key in info.data and not isinstance(info.data[base_key], float):
            name = base_key.replace("_", "-")
            raise ValueError(f"applies to durations only; {name} is a distribution")
    return std_dev


class LatencySection(Section):
    """How long things take. Each latency key takes a duration or a distribution."""

    latency_calculator: Literal["constant", "per-token", ""] | None = Field(
        default=None,
        description=(
            "How TTFT is computed: constant (time-to-first-token), per-token (prefill-overhead +"
            " uncached prompt tokens x prefill-time-per-token); omitted: per-token when"
            " time-to-first-token and its std-dev are both 0, else constant."
        ),
    )
    time_to_first_token: LatencyValue = Field(default=0.0, description="Time to first token.")
    time_to_first_token_std_dev: Duration = Field(
        default=0.0, description="Normal jitter of a constant TTFT; at most 30% of it."
    )
    inter_token_latency: LatencyValue = Field(default=0.0, description="Time between tokens.")
    inter_token_latency_std_dev: Duration = Field(
        default=0.0, description="Normal jitter of a constant ITL; at most 30% of it."
    )
    prefill_overhead: LatencyValue = Field(
        default=0.0, description="per-token calculator: fixed part of the TTFT."
    )
    prefill_time_per_token: LatencyValue = Field(
        default=0.0, description="per-token calculator: TTFT per uncached prompt token."
    )
    prefill_time_std_dev: Duration = Field(
        default=0.0, description="per-token calculator: normal jitter of the TTFT (clamped ±70%)."
    )
    kv_cache_transfer_latency: LatencyValue = Field(
        default=0.0, description="TTFT of a request with do_remote_prefill (constant calculator)."
    )
    kv_cache_transfer_latency_std_dev: Duration = Field(
        default=0.0, description="Normal jitter of kv-cache-transfer-latency; at most 30% of it."
    )
    kv_cache_transfer_time_per_token: LatencyValue = Field(
        default=0.0,
        description="TTFT per prompt token of a request with do_remote_prefill (per-token).",
    )
    kv_cache_transfer_time_std_dev: Duration = Field(
        default=0.0, description="Normal jitter of the per-token KV transfer time (clamped ±70%)."
    )
    time_to_generate_image: LatencyValue = Field(
        default=0.0, description="omni: time from an answer's last token to its image."
    )
    time_to_generate_image_std_dev: Duration = Field(
        default=0.0, description="Normal jitter of time-to-generate-image; at most 30% of it."
    )
    time_factor_under_load: float = Field(
        default=1.0,
        ge=1.0,
        allow_inf_nan=False,
        description=(
            "TTFT and ITL multiplier when all max-num-seqs slots run; scales linearly from 1"
            " with one running request."
        ),
    )

    _check_std_devs = field_validator(
        "time_to_first_token_std_dev",
        "inter_token_latency_std_dev",
        "kv_cache_transfer_latency_std_dev",
        "time_to_generate_image_std_dev",
    )(check_std_dev)
    _check_unbounded_std_devs = field_validator(
        "prefill_time_std_dev", "kv_cache_transfer_time_std_dev"
    )(check_std_dev_beside_durations)


class DatasetSource(Section):
    """A SQLite response dataset in upstream's format."""

    path: str = Field(min_length=1, description="The SQLite file (downloaded first if missing).")
    url: str | None = Field(default=None, description="Where to download it from when missing.")
    table: str = Field(default="llmd", min_length=1, description="The table of responses.")
    in_memory: bool = Field(default=False, description="Copy the whole file into memory.")


class ToolCallSettings(Section):
    """How tool calls are synthesized (upstream's tool-call flags)."""

    tool_call_extra_call_probability: float = Field(
        default=45, ge=0, le=100, description="Percent chance of each call beyond the minimum."
    )
    tool_call_not_required_param_probability: float = Field(
        default=50, ge=0, le=100, description="Percent chance an optional argument is given."
    )
    object_tool_call_not_required_field_probability: float = Field(
        default=50, ge=0, le=100, description="Percent chance an optional nested field is given."
    )
    min_tool_call_integer_param: int = 0
    max_tool_call_integer_param: int = 100
    min_tool_call_number_param: float = 0
    max_tool_call_number_param: float = 100
    min_tool_call_array_param_length: int = Field(default=1, ge=0)
    max_tool_call_array_param_length: int = Field(default=5, ge=0)
    skip_tool_validation: bool = Field(default=False, description="Accept any tool schema.")

    @model_validator(mode="after")
    def _ordered(self) -> ToolCallSettings:
        for kind in ("integer_param", "number_param", "array_param_length"):
            if getattr(self, f"min_tool_call_{kind}") > getattr(self, f"max_tool_call_{kind}"):
                raise ValueError(f"min-tool-call-{kind.replace('_', '-')} is above the max")
        return self


class ReasoningSettings(Section):
    """A thinking model: a reasoning stream before the answer, as vLLM's reasoning parsers
    return it."""

    enabled: bool = Field(default=True, description="Whether chat answers start by reasoning.")
    min_tokens: int = Field(default=16, ge=0, description="Fewest reasoning tokens.")
    max_tokens: int = Field(default=128, ge=0, description="Most reasoning tokens.")
    probability: Percentage = Field(
        default=100, description="Percent of chat answers that reason (the rest answer at once)."
    )
    field: Literal["reasoning_content", "reasoning"] = Field(
        default="reasoning_content",
        description="The message and delta key of the reasoning text (vLLM's names).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> ReasoningSettings:
        if self.min_tokens > self.max_tokens:
            raise ValueError("min-tokens is above max-tokens")
        return self


class ResponsesSection(Section):
    """Where response text comes from."""

    mode: Literal["random", "echo"] = Field(
        default="random",
        description="random: built-in text (or the dataset's); echo: repeat the prompt.",
    )
    dataset: DatasetSource | None = Field(
        default=None, description="Answers from a dataset in random mode."
    )
    tools: ToolCallSettings = ToolCallSettings()
    reasoning: ReasoningSettings | None = Field(
        default=None, description="Make the model think before it answers (chat completions)."
    )
    omni: bool = Field(default=False, description="Chat answers may carry a generated image.")
    image_emission_rate: Percentage = Field(
        default=0, description="omni: percent of chat answers that carry an image."
    )

    @model_validator(mode="after")
    def _echo_has_no_dataset(self) -> ResponsesSection:
        if self.mode == "echo" and self.dataset is not None:
            raise ValueError("echo mode does not use a dataset: remove one of them")
        return self
