"""What happened, in plain numbers: the engine's request outcomes as histograms and counters.

The engine calls ``choice_finished`` once per choice (sub-request) and ``choice_aborted`` when a
client goes away; inter-token latencies are observed as they are drawn; the scheduler reports
LoRA activity. Gauges are not kept here: the collector reads them from the engine at scrape time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from llmsim.metrics.buckets import (
    REQUEST_LATENCY_BUCKETS,
    TPOT_BUCKETS,
    TTFT_BUCKETS,
    token_buckets,
)
from llmsim.metrics.histogram import Histogram

FINISH_ABORT = "abort"
FINISH_REASONS = ("stop", "length", "tool_calls", "remote_decode", "cache_threshold", FINISH_ABORT)
"""Every ``finished_reason`` label value; each series exists (at 0) from the start, as in vLLM."""


@dataclass(frozen=True, slots=True)
class ChoiceTiming:
    """The instants of one choice's life, on the engine clock (seconds)."""

    arrived: float
    admitted: float
    first_token: float | None
    """None for answers without tokens or timing (cache_threshold)."""
    finished: float
    tokens: int


class MetricsRecorder:
    """Histograms and counters of finished requests, as vLLM defines them."""

    def __init__(self, max_model_len: int):
        self.time_to_first_token = Histogram(TTFT_BUCKETS)
        self.inter_token_latency = Histogram(TPOT_BUCKETS)
        self.request_time_per_output_token = Histogram(TPOT_BUCKETS)
        self.e2e_request_latency = Histogram(REQUEST_LATENCY_BUCKETS)
        self.request_queue_time = Histogram(REQUEST_LATENCY_BUCKETS)
        self.request_inference_time = Histogram(REQUEST_LATENCY_BUCKETS)
        self.request_prefill_time = Histogram(REQUEST_LATENCY_BUCKETS)
        self.request_decode_time = Histogram(REQUEST_LATENCY_BUCKETS)
        tokens = token_buckets(max_model_len)
        self.request_prompt_tokens = Histogram(tokens)
        self.request_generation_tokens = Histogram(tokens)
        self.request_params_max_tokens = Histogram(tokens)
        self.request_max_num_generation_tokens = Histogram(tokens)
        self.prompt_tokens_total = 0
        self.generation_tokens_total = 0
        self.prefix_cache_hits_total = 0
        self.prefix_cache_queries_total = 0
        self.request_success_total = dict.fromkeys(FINISH_REASONS, 0)
        self.lora_requests_info: dict[tuple[str, str], float] = {("", ""): time.time()}
        """``(running adapters, waiting adapters)`` -> Unix time that pair was last current."""

    def lora_changed(self, running: tuple[str, ...], waiting: tuple[str, ...]) -> None:
        """The adapters with running and waiting requests now (LORA-5, MET-2)."""
        self.lora_requests_info[(",".join(running), ",".join(waiting))] = time.time()

    def choice_finished(
        self,
        timing: ChoiceTiming,
        prompt_tokens: int,
        max_tokens: int | None,
        finish_reason: str,
    ) -> None:
        """A choice ended normally: record its times, sizes and finish reason (MET-5); an
        answer with no first token (cache_threshold) records no TTFT, TPOT, prefill or decode."""
        self.e2e_request_latency.observe(timing.finished - timing.arrived)
        self.request_queue_time.observe(timing.admitted - timing.arrived)
        self.request_inference_time.observe(timing.finished - timing.admitted)
        if timing.first_token is not None:
            decode = timing.finished - timing.first_token
            self.time_to_first_token.observe(timing.first_token - timing.arrived)
            self.request_prefill_time.observe(timing.first_token - timing.admitted)
            self.request_decode_time.observe(decode)
            tpot = decode / (timing.tokens - 1) if timing.tokens > 1 else 0.0
            self.request_time_per_output_token.observe(tpot)
        self.request_prompt_tokens.observe(prompt_tokens)
        self.request_generation_tokens.observe(timing.tokens)
        self.request_max_num_generation_tokens.observe(timing.tokens)
        if max_tokens is not None:
            self.request_params_max_tokens.observe(max_tokens)
        self.prompt_tokens_total += prompt_tokens
        self.generation_tokens_total += timing.tokens
        self._count(finish_reason)

    def choice_aborted(self) -> None:
        """A choice's client went away before it ended (vLLM's ``abort`` finish reason)."""
        self._count(FINISH_ABORT)

    def _count(self, reason: str) -> None:
        self.request_success_total[reason] = self.request_success_total.get(reason, 0) + 1
