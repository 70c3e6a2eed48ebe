"""The ``metrics`` section: fake metrics that replace the real ones (FAKE-1 to FAKE-4).

A gauge takes a number or a generator ``"<function>:<start>:<end>:<period>"`` with function
``oscillate``, ``ramp``, ``rampreset`` or ``squarewave``. Histograms take bucket counts: element i
is the number of observations in bucket i (at its bound). Counters take totals.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema, model_validator

from llmsim.metrics.buckets import REQUEST_LATENCY_BUCKETS, TPOT_BUCKETS, TTFT_BUCKETS
from llmsim.metrics.recorder import FINISH_REASONS
from llmsim.scenario.base import Section, json_text
from llmsim.scenario.units import Duration, format_duration

FAKE_FUNCTIONS = ("oscillate", "ramp", "rampreset", "squarewave")


class FakeFunction(Section):
    """A time-varying fake value: ``function`` from ``start`` to ``end`` over ``period``."""

    function: Literal["oscillate", "ramp", "rampreset", "squarewave"]
    start: float = Field(ge=0, allow_inf_nan=False)
    end: float = Field(ge=0, allow_inf_nan=False)
    period: Duration = Field(gt=0)

    def __str__(self) -> str:
        return f"{self.function}:{self.start:g}:{self.end:g}:{format_duration(self.period)}"


def _parse_fake_value(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number or function:start:end:period")
    if not isinstance(value, str):
        return value
    parts = value.split(":")
    if len(parts) != 4:
        raise ValueError(f"{value!r} is not function:start:end:period")
    function, start, end, period = parts
    if function not in FAKE_FUNCTIONS:
        raise ValueError(f"unknown function {function!r}; use one of {', '.join(FAKE_FUNCTIONS)}")
    try:
        start_value, end_value = float(start), float(end)
    except ValueError:
        raise ValueError(f"{value!r}: start and end must be numbers") from None
    return FakeFunction(
        function=function,
        start=start_value,
        end=end_value,
        period=period,
    )


FakeValue = Annotated[
    Annotated[float, Field(ge=0, allow_inf_nan=False)] | FakeFunction,
    BeforeValidator(_parse_fake_value),
    PlainSerializer(lambda v: v if isinstance(v, float | int) else str(v)),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {
                    "type": "string",
                    "pattern": r"^(oscillate|ramp|rampreset|squarewave):[^:]+:[^:]+:[^:]+$",
                },
            ],
            "description": "A number, or function:start:end:period.",
        }
    ),
]
BucketCounts = list[Annotated[int, Field(ge=0)]]
_SECONDS_BUCKETS = {
    "ttft_buckets_values": TTFT_BUCKETS,
    "tpot_buckets_values": TPOT_BUCKETS,
    "request_tpot_buckets_values": TPOT_BUCKETS,
    "e2erl_buckets_values": REQUEST_LATENCY_BUCKETS,
    "queue_time_buckets_values": REQUEST_LATENCY_BUCKETS,
    "inf_time_buckets_values": REQUEST_LATENCY_BUCKETS,
    "prefill_time_buckets_values": REQUEST_LATENCY_BUCKETS,
    "decode_time_buckets_values": REQUEST_LATENCY_BUCKETS,
}


def _comma_list(value: Any) -> Any:
    """A list of names joined by commas; anything else is left for the ``str`` check."""
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ",".join(value)
    return value


class FakeLora(Section):
    """One ``vllm:lora_requests_info`` series: adapter names (comma-joined) and its value."""

    running: Annotated[str, BeforeValidator(_comma_list)] = ""
    waiting: Annotated[str, BeforeValidator(_comma_list)] = ""
    timestamp: float = Field(ge=0, allow_inf_nan=False)


class FakeMetrics(Section):
    """Values reported instead of the real metrics."""

    running_requests: FakeValue | None = Field(
        default=None, description="vllm:num_requests_running"
    )
    waiting_requests: FakeValue | None = Field(
        default=None, description="vllm:num_requests_waiting"
    )
    kv_cache_usage: FakeValue | None = Field(
        default=None, description="vllm:kv_cache_usage_perc, 0-1"
    )
    loras: list[Annotated[FakeLora, BeforeValidator(json_text("a loras entry"))]] | None = None
    ttft_buckets_values: BucketCounts | None = None
    tpot_buckets_values: BucketCounts | None = Field(
        default=None, description="time per output token and inter-token latency buckets"
    )
    request_tpot_buckets_values: BucketCounts | None = None
    e2erl_buckets_values: BucketCounts | None = None
    queue_time_buckets_values: BucketCounts | None = None
    inf_time_buckets_values: BucketCounts | None = None
    prefill_time_buckets_values: BucketCounts | None = None
    decode_time_buckets_values: BucketCounts | None = None
    request_prompt_tokens: BucketCounts | None = None
    request_generation_tokens: BucketCounts | None = None
    request_params_max_tokens: BucketCounts | None = None
    request_max_generation_tokens: BucketCounts | None = None
    request_success_total: dict[Literal[FINISH_REASONS], Annotated[int, Field(ge=0)]] | None = None  # type: ignore[valid-type]
    total_prompt_tokens: int | None = Field(default=None, ge=0)
    total_generation_tokens: int | None = Field(default=None, ge=0)
    prefix_cache_hits: int | None = Field(default=None, ge=0)
    prefix_cache_queries: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> FakeMetrics:
        for key, bounds in _SECONDS_BUCKETS.items():
            counts = getattr(self, key)
            if counts is not None and len(counts) > len(bounds) + 1:
                name = key.replace("_", "-")
                raise ValueError(f"{name} has more values than buckets ({len(bounds) + 1})")
        usage = self.kv_cache_usage
        extremes = [usage] if isinstance(usage, float | int) else []
        if isinstance(usage, FakeFunction):
            extremes = [usage.start, usage.end]
        if any(extreme > 1 for extreme in extremes):
            raise ValueError("kv-cache-usage must be between 0 and 1")
        if (self.prefix_cache_hits is None) != (self.prefix_cache_queries is None):
            raise ValueError("prefix-cache-hits and prefix-cache-queries go together")
        if (
            self.prefix_cache_hits is not None
            and self.prefix_cache_queries is not None
            and self.prefix_cache_hits > self.prefix_cache_queries
        ):
            raise ValueError("prefix-cache-hits must not exceed prefix-cache-queries")
        return self


class MetricsSection(Section):
    """What ``/metrics`` reports."""

    fake_metrics: FakeMetrics | None = Field(
        default=None, description="Report these values instead of the real metrics."
    )
    fake_metrics_refresh_interval: Duration = Field(
        default=0.1, gt=0, description="How often fake generator functions are re-evaluated."
    )
