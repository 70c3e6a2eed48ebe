"""Upstream's per-request latency model: time to first token and the load factor.

TTFT comes from one of three rules (LAT-2, LAT-4): a remote prefill waits for the KV transfer
(constant or per prompt token, never scaled by load); a local prefill is either a sampled
constant or prefill-overhead + uncached prompt tokens x prefill-time-per-token, both scaled by the
load factor F (LAT-3). ITL is sampled per token, scaled by F read at that token.
"""

from __future__ import annotations

import random

from llmsim.plan.plan import LatencyPlan
from llmsim.plan.samplers import UPSTREAM_CLAMP


def upstream_jitter(rng: random.Random, mean: float, std_dev: float) -> float:
    """Normal(mean, std_dev) clamped to [0.3, 1.7] x mean; the mean itself when no jitter."""
    if std_dev <= 0 or mean <= 0:
        return mean
    low, high = UPSTREAM_CLAMP
    return min(max(rng.gauss(mean, std_dev), low * mean), high * mean)


def load_factor(latency: LatencyPlan, running: int, max_num_seqs: int) -> float:
    """F = 1 + (time-factor-under-load - 1) x (running - 1) / (max-num-seqs - 1) (LAT-3)."""
    if max_num_seqs <= 1 or latency.time_factor_under_load == 1.0:
        return 1.0
    busy = min(max(running - 1, 0), max_num_seqs - 1)
    return 1.0 + (latency.time_factor_under_load - 1.0) * busy / (max_num_seqs - 1)


def first_token_delay(
    latency: LatencyPlan,
    rng: random.Random,
    prompt_tokens: int,
    cached_tokens: int,
    remote_prefill: bool,
    factor: float,
) -> float:
    """Seconds from admission to the first token."""
    if remote_prefill:
        if latency.per_token_transfer:
            per_token = latency.kv_cache_transfer_time_per_token.sample(rng)
            return upstream_jitter(
                rng, prompt_tokens * per_token, latency.kv_cache_transfer_time_std_dev
            )
        return latency.kv_cache_transfer_latency.sample(rng)
    if latency.per_token_prefill:
        overhead = latency.prefill_overhead.sample(rng)
        per_token = latency.prefill_time_per_token.sample(rng)
        mean = (overhead + (prompt_tokens - cached_tokens) * per_token) * factor
        return upstream_jitter(rng, mean, latency.prefill_time_std_dev)
    return latency.time_to_first_token.sample(rng, factor)
