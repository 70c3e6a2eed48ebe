"""What happened, in plain numbers: the engine's request outcomes as histograms and counters.

The engine calls ``choice_finished`` once per choice (sub-request) and ``choice_aborted`` when a
client goes away; inter-token latencies are observed as they are drawn; the scheduler reports
LoRA activity. Gauges are not kept here: the collector reads them from the engine at scrape time.
"""

from __future__ import annotations

import time
from bisect import bisect_left

from llmsim.metrics.buckets import (
    ITERATION_TOKEN_BUCKETS,
    REQUEST_LATENCY_BUCKETS,
    TPOT_BUCKETS,
    TTFT_BUCKETS,
    token_buckets,
)
from llmsim.metrics.histogram import Histogram

FINISH_ABORT = "abort"
FINISH_REASONS = ("stop", "length", "tool_calls", "remote_decode", "cache_threshold", FINISH_ABORT)
"""Every ``finished_reason`` label value; each series exists (at 0) from the start, as in vLLM."""


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
        self.engine_loop = False
        """Whether the batched engine runs: its families are exported only then."""
        self.iteration_tokens = Histogram(ITERATION_TOKEN_BUCKETS)
        self.num_preemptions_total = 0
        self.lora_requests_info: dict[tuple[str, str], float] = {("", ""): time.time()}
        """``(running adapters, waiting adapters)`` -> Unix time that pair was last current."""

    def lora_changed(self, running: tuple[str, ...], waiting: tuple[str, ...]) -> None:
        """The adapters with running and waiting requests now (LORA-5, MET-2)."""
        self.lora_requests_info[(",".join(running), ",".join(waiting))] = time.time()

    def choice_finished(
        self,
        arrived: float,
        admitted: float,
        first_token: float | None,
        finished: float,
        tokens: int,
        prompt_tokens: int,
        max_tokens: int | None,
        finish_reason: str,
    ) -> None:
        """A choice ended normally: record its instants (engine clock, seconds), sizes and
        finish reason (MET-5); an answer with no first token (cache_threshold) records no TTFT,
        TPOT, prefill or decode."""
        self.e2e_request_latency.observe(finished - arrived)
        self.request_queue_time.observe(admitted - arrived)
        self.request_inference_time.observe(finished - admitted)
        if first_token is not None:
            decode = finished - first_token
            self.time_to_first_token.observe(first_token - arrived)
            self.request_prefill_time.observe(first_token - admitted)
            self.request_decode_time.observe(decode)
            self.request_time_per_output_token.observe(decode / (tokens - 1) if tokens > 1 else 0.0)
        self.request_prompt_tokens.observe(prompt_tokens)
        # generation_tokens and max_num_generation_tokens share their bounds and, with one
        # choice per sub-request, their value: one bisection serves both.
        generation, most = self.request_generation_tokens, self.request_max_num_generation_tokens
        index = bisect_left(generation.bounds, tokens)
        generation.counts[index] += 1
        generation.sum += tokens
        most.counts[index] += 1
        most.sum += tokens
        if max_tokens is not None:
            self.request_params_max_tokens.observe(max_tokens)
        self.prompt_tokens_total += prompt_tokens
        self.generation_tokens_total += tokens
        self._count(finish_reason)

    def choice_aborted(self) -> None:
        """A choice's client went away before it ended (vLLM's ``abort`` finish reason)."""
        self._count(FINISH_ABORT)

    def _count(self, reason: str) -> None:
        self.request_success_total[reason] = self.request_success_total.get(reason, 0) + 1
