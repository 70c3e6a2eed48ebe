"""The ``kv-cache`` section: prefix caching, block hashing and KV events (KV-*, ZMQ-*)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llmsim.scenario.base import Section


class KVCacheSection(Section):
    """The simulated KV cache and the ZMQ events it publishes."""

    enable_kvcache: bool = Field(default=False, description="Simulate the prefix cache.")
    kv_cache_size: int = Field(default=1024, ge=1, description="Capacity in blocks.")
    block_size: Literal[8, 16, 32, 64, 128] = Field(default=16, description="Tokens per block.")
    hash_seed: str | None = Field(
        default=None,
        description=(
            "Seed of the block-hash chain; default: empty. When llmsim runs, a non-empty"
            " $PYTHONHASHSEED takes precedence over the file (and --hash-seed over both)."
        ),
    )
    zmq_endpoint: str = Field(
        default="tcp://127.0.0.1:5557",
        description="Where KV events are published (the PUB socket connects); empty: none.",
    )
    event_batch_size: int = Field(default=16, ge=1, description="Events per published batch.")
    use_vllm_map_event_format: bool = Field(
        default=False, description="Events as maps (vLLM's newer form) instead of arrays."
    )
    kv_events_replay_endpoint: str = Field(
        default="", description="Where the replay ROUTER socket binds; empty: no replay."
    )
    kv_events_replay_queue_size: int = Field(
        default=1024, ge=1, description="Batches kept for replay."
    )
    global_cache_hit_threshold: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Below this prefix-cache hit rate a request finishes with cache_threshold.",
    )
