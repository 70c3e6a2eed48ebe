"""The ``/metrics`` collector: vLLM's metric families, computed at scrape time (MET-1 to MET-4).

Every engine series carries ``model_name`` = the first served name. Gauges are read from the
engine at each scrape, so they always match it. With fake metrics configured, every engine family
reports the fake values instead and nothing real is reported (FAKE-5, stricter than upstream).
The API server's ``http_requests_total`` counts HTTP traffic, not the engine: it stays real.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from llmsim.metrics.fake import fake_value
from llmsim.metrics.histogram import Histogram
from llmsim.metrics.recorder import FINISH_REASONS, MetricsRecorder
from llmsim.scenario.fake_metrics import FakeMetrics


@dataclass(frozen=True, slots=True)
class HistogramSpec:
    """One histogram family: its name, help, recorder attribute and fake-metrics key."""

    name: str
    documentation: str
    attribute: str
    fake_key: str


HISTOGRAMS = (
    HistogramSpec(
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        "time_to_first_token",
        "ttft_buckets_values",
    ),
    HistogramSpec(
        "vllm:time_per_output_token_seconds",
        "Histogram of time per output token in seconds.",
        "inter_token_latency",
        "tpot_buckets_values",
    ),
    HistogramSpec(
        "vllm:inter_token_latency_seconds",
        "Histogram of inter-token latency in seconds.",
        "inter_token_latency",
        "tpot_buckets_values",
    ),
    HistogramSpec(
        "vllm:request_time_per_output_token_seconds",
        "Histogram of time_per_output_token_seconds per request.",
        "request_time_per_output_token",
        "request_tpot_buckets_values",
    ),
    HistogramSpec(
        "vllm:e2e_request_latency_seconds",
        "Histogram of end to end request latency in seconds.",
        "e2e_request_latency",
        "e2erl_buckets_values",
    ),
    HistogramSpec(
        "vllm:request_queue_time_seconds",
        "Histogram of time spent in WAITING phase for request.",
        "request_queue_time",
        "queue_time_buckets_values",
    ),
    HistogramSpec(
        "vllm:request_inference_time_seconds",
        "Histogram of time spent in RUNNING phase for request.",
        "request_inference_time",
        "inf_time_buckets_values",
    ),
    HistogramSpec(
        "vllm:request_prefill_time_seconds",
        "Histogram of time spent in PREFILL phase for request.",
        "request_prefill_time",
        "prefill_time_buckets_values",
    ),
    HistogramSpec(
        "vllm:request_decode_time_seconds",
        "Histogram of time spent in DECODE phase for request.",
        "request_decode_time",
        "decode_time_buckets_values",
    ),
    HistogramSpec(
        "vllm:request_prompt_tokens",
        "Number of prefill tokens processed.",
        "request_prompt_tokens",
        "request_prompt_tokens",
    ),
    HistogramSpec(
        "vllm:request_generation_tokens",
        "Number of generation tokens processed.",
        "request_generation_tokens",
        "request_generation_tokens",
    ),
    HistogramSpec(
        "vllm:request_params_max_tokens",
        "Histogram of the max_tokens request parameter.",
        "request_params_max_tokens",
        "request_params_max_tokens",
    ),
    HistogramSpec(
        "vllm:request_max_num_generation_tokens",
        "Histogram of maximum number of requested generation tokens.",
        "request_max_num_generation_tokens",
        "request_max_generation_tokens",
    ),
)


@dataclass(slots=True)
class ExpositionState:
    """What the collector needs besides the recorder; the server keeps it current."""

    model_name: str
    scenario_name: str
    running: Callable[[], int]
    waiting: Callable[[], int]
    kv_usage: Callable[[], float]
    max_loras: int
    block_size: int
    num_gpu_blocks: int
    fake: FakeMetrics | None
    fake_refresh_interval: float
    active_phase: Callable[[], str | None] = lambda: None
    http_requests: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    """``(method, status group, handler)`` -> HTTP requests (``http_requests_total``)."""


class SimulatorCollector(Collector):
    """Yields every metric family from the recorder and the engine, or from fake values."""

    def __init__(
        self,
        recorder: MetricsRecorder,
        state: ExpositionState,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.recorder = recorder
        self.state = state
        self._clock = clock
        self._started = clock()

    def describe(self) -> Iterator[Metric]:
        """Nothing to describe ahead of a scrape (families are computed when collected)."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Every family, real or fake."""
        state = self.state
        labels = [state.model_name]
        fake = state.fake
        elapsed = self._clock() - self._started

        def gauge_value(name: str, real: float, truncate: bool) -> float:
            value = getattr(fake, name) if fake is not None else None
            if fake is None:
                return real
            if value is None:
                return 0.0
            result = fake_value(value, elapsed, state.fake_refresh_interval)
            return float(int(result)) if truncate else result

        yield self._gauge(
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            gauge_value("running_requests", state.running(), True),
        )
        yield self._gauge(
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            gauge_value("waiting_requests", state.waiting(), True),
        )
        yield self._gauge(
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            gauge_value("kv_cache_usage", state.kv_usage(), False),
        )
        yield self._lora_info()
        cache = GaugeMetricFamily(
            "vllm:cache_config_info",
            "Information of the LLMEngine CacheConfig.",
            labels=["block_size", "num_gpu_blocks"],
        )
        cache.add_metric([str(state.block_size), str(state.num_gpu_blocks)], 1.0)
        yield cache
        yield from self._counters(labels)
        if self.recorder.engine_loop and fake is None:
            yield from self._engine_loop(labels)
        for spec in HISTOGRAMS:
            histogram = getattr(self.recorder, spec.attribute)
            if fake is not None:
                histogram = self._fake_histogram(histogram, getattr(fake, spec.fake_key))
            family = HistogramMetricFamily(spec.name, spec.documentation, labels=["model_name"])
            family.add_metric(labels, histogram.cumulative(), sum_value=histogram.sum)
            yield family
        info = GaugeMetricFamily(
            "llmsim:scenario_info",
            "The running scenario and its active phase (empty outside every phase).",
            labels=["model_name", "scenario", "phase"],
        )
        info.add_metric([state.model_name, state.scenario_name, state.active_phase() or ""], 1.0)
        yield info
        yield self._http_requests()

    def _engine_loop(self, labels: list[str]) -> Iterator[Metric]:
        """The batched engine's own families, as vLLM names them."""
        recorder = self.recorder
        preemptions = CounterMetricFamily(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            labels=["model_name"],
        )
        preemptions.add_metric(labels, recorder.num_preemptions_total)
        yield preemptions
        tokens = recorder.iteration_tokens
        family = HistogramMetricFamily(
            "vllm:iteration_tokens_total",
            "Histogram of number of tokens per engine_step.",
            labels=["model_name"],
        )
        family.add_metric(labels, tokens.cumulative(), sum_value=tokens.sum)
        yield family

    def _gauge(self, name: str, documentation: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, documentation, labels=["model_name"])
        family.add_metric([self.state.model_name], value)
        return family

    def _lora_info(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "vllm:lora_requests_info",
            "Running stats on lora requests.",
            labels=["max_lora", "running_lora_adapters", "waiting_lora_adapters"],
        )
        max_lora = str(self.state.max_loras)
        fake = self.state.fake
        if fake is not None and fake.loras is not None:
            for lora in fake.loras:
                family.add_metric([max_lora, lora.running, lora.waiting], lora.timestamp)
        else:
            for (running, waiting), stamp in self.recorder.lora_requests_info.items():
                family.add_metric([max_lora, running, waiting], stamp)
        return family

    def _counters(self, labels: list[str]) -> Iterator[Metric]:
        recorder, fake = self.recorder, self.state.fake
        totals: dict[str, float] = {
            "vllm:prompt_tokens": recorder.prompt_tokens_total,
            "vllm:generation_tokens": recorder.generation_tokens_total,
            "vllm:prefix_cache_hits": recorder.prefix_cache_hits_total,
            "vllm:prefix_cache_queries": recorder.prefix_cache_queries_total,
        }
        reasons = dict(recorder.request_success_total)
        if fake is not None:
            totals = {
                "vllm:prompt_tokens": _fake_total(
                    fake.total_prompt_tokens,
                    self._fake_histogram(
                        recorder.request_prompt_tokens, fake.request_prompt_tokens
                    ),
                ),
                "vllm:generation_tokens": _fake_total(
                    fake.total_generation_tokens,
                    self._fake_histogram(
                        recorder.request_generation_tokens, fake.request_generation_tokens
                    ),
                ),
                "vllm:prefix_cache_hits": fake.prefix_cache_hits or 0,
                "vllm:prefix_cache_queries": fake.prefix_cache_queries or 0,
            }
            reasons = {reason: 0 for reason in FINISH_REASONS}
            reasons.update(fake.request_success_total or {})
        documentation = {
            "vllm:prompt_tokens": "Number of prefill tokens processed.",
            "vllm:generation_tokens": "Number of generation tokens processed.",
            "vllm:prefix_cache_hits": "Prefix cache hits, in terms of number of cached tokens.",
            "vllm:prefix_cache_queries": "Prefix cache queries, in number of queried tokens.",
        }
        for name, value in totals.items():
            family = CounterMetricFamily(name, documentation[name], labels=["model_name"])
            family.add_metric(labels, value)
            yield family
        success = CounterMetricFamily(
            "vllm:request_success",
            "Count of successfully processed requests.",
            labels=["model_name", "finished_reason"],
        )
        for reason, count in sorted(reasons.items()):
            success.add_metric([*labels, reason], count)
        yield success

    def _http_requests(self) -> CounterMetricFamily:
        """vLLM's API-server request counter (prometheus-fastapi-instrumentator's default
        ``http_requests_total``). It counts HTTP traffic, not the engine: fake metrics do not
        replace it. A series appears with its first request, as in vLLM."""
        family = CounterMetricFamily(
            "http_requests",
            "Total number of requests by method, status and handler.",
            labels=["method", "status", "handler"],
        )
        for labels, count in sorted(self.state.http_requests.items()):
            family.add_metric(list(labels), count)
        return family

    @staticmethod
    def _fake_histogram(shape: Histogram, counts: list[int] | None) -> Histogram:
        histogram = Histogram(shape.bounds)
        if counts:
            buckets = len(shape.bounds) + 1
            folded = [*counts[: buckets - 1], sum(counts[buckets - 1 :])]
            histogram.load_counts(folded)
        return histogram


def _fake_total(given: int | None, histogram: Histogram) -> float:
    """A fake token total: as given, else the sum over its histogram's buckets (FAKE-2)."""
    return float(given) if given is not None else histogram.sum
