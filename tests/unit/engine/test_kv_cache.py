"""The prefix cache: references, prefix hits, capacity, eviction order and events (KV-3 to KV-5)."""

from __future__ import annotations

from llmsim.engine.kv_cache import KVCache, PromptBlocks


class Events:
    """Records what the cache reports, as the publisher would receive it."""

    def __init__(self) -> None:
        self.log: list[tuple[object, ...]] = []

    def block_stored(
        self,
        block_hashes: list[int],
        parent_block_hash: int | None,
        token_ids: list[int],
        block_size: int,
        lora_id: int | None,
        lora_name: str | None,
    ) -> None:
        self.log.append(("stored", block_hashes, parent_block_hash, token_ids, lora_id, lora_name))

    def blocks_removed(self, block_hashes: list[int]) -> None:
        self.log.append(("removed", block_hashes))

    def all_blocks_cleared(self) -> None:
        self.log.append(("cleared",))


def ids(blocks: int, start: int = 0) -> list[int]:
    return list(range(start, start + 2 * blocks))


def test_new_blocks_are_stored_in_one_event_and_a_repeat_hits_the_prefix_KV_4_KV_5() -> None:
    events = Events()
    cache = KVCache(capacity=10, block_size=2, sink=events)
    assert cache.acquire("m", [11, 12, 13], ids(3)) == 0
    assert events.log == [("stored", [11, 12, 13], None, ids(3), None, None)]
    assert cache.usage() == 0.3
    cache.release("m", [11, 12, 13])
    assert cache.usage() == 0.0
    assert cache.acquire("m", [11, 12, 14, 15], ids(4)) == 4
    assert events.log[-1] == ("stored", [14, 15], 12, ids(4)[4:8], None, None)


def test_blocks_are_per_model_and_carry_the_lora_slot_KV_2_KV_5() -> None:
    events = Events()
    cache = KVCache(capacity=10, block_size=2, sink=events)
    cache.acquire("m", [1], ids(1))
    assert cache.acquire("lora-a", [1], ids(1), lora_id=1, lora_name="lora-a") == 0
    assert events.log[-1] == ("stored", [1], None, ids(1), 1, "lora-a")


def test_capacity_counts_referenced_new_and_reused_idle_blocks_KV_3() -> None:
    cache = KVCache(capacity=4, block_size=2)
    cache.acquire("m", [1, 2, 3], ids(3))
    assert not cache.fits("m", [4, 5])
    assert cache.fits("m", [4])
    cache.release("m", [1, 2, 3])
    assert cache.fits("m", [1, 2, 3, 4])
    assert not cache.fits("m", [6, 7, 8, 9, 10])


def test_the_oldest_unused_block_is_evicted_unloaded_models_first_KV_3() -> None:
    events = Events()
    loaded = {"m"}
    cache = KVCache(capacity=3, block_size=2, sink=events, is_loaded=lambda m: m in loaded)
    cache.acquire("m", [1], ids(1))
    cache.acquire("lora-x", [2], ids(1))
    cache.acquire("m", [3], ids(1))
    for model, block in (("m", 1), ("lora-x", 2), ("m", 3)):
        cache.release(model, [block])
    cache.acquire("m", [4], ids(1))
    assert events.log[-2] == ("removed", [2])
    cache.acquire("m", [5], ids(1))
    assert events.log[-2] == ("removed", [1])


def test_referenced_blocks_are_never_evicted_KV_3() -> None:
    cache = KVCache(capacity=2, block_size=2)
    cache.acquire("m", [1], ids(1))
    cache.acquire("m", [2], ids(1))
    cache.release("m", [2])
    cache.acquire("m", [3], ids(1))
    assert cache.cached_blocks("m", [1]) == 1
    assert cache.cached_blocks("m", [2]) == 0


def test_clear_drops_everything_and_says_so() -> None:
    events = Events()
    cache = KVCache(capacity=4, block_size=2, sink=events)
    cache.acquire("m", [1, 2], ids(2))
    cache.clear()
    assert events.log[-1] == ("cleared",)
    assert cache.usage() == 0.0
    assert cache.cached_blocks("m", [1, 2]) == 0


def test_an_eviction_does_not_scan_every_unused_block() -> None:
    asked: list[str] = []

    def is_loaded(model: str) -> bool:
        asked.append(model)
        return model == "base"

    cache = KVCache(capacity=5000, block_size=4, is_loaded=is_loaded)
    old = list(range(5000))
    cache.acquire("base", old, [0] * 4 * 5000)
    cache.release("base", old)
    asked.clear()
    new = list(range(5000, 6000))
    cache.acquire("base", new, [0] * 4 * 1000)
    # One question per eviction at most (which models are idle), not one per unused block.
    assert len(asked) <= 1000
    # Freed tail first, so the tail went first and the shared prefix stayed.
    assert cache.cached_blocks("base", old[-1:]) == 0
    assert cache.cached_blocks("base", old[:1]) == 1
    assert cache.in_use == 1000


def test_blocks_held_across_a_clear_are_not_given_back_twice() -> None:
    cache = KVCache(capacity=10, block_size=4)
    before = PromptBlocks(cache, "m", [1, 2], [0] * 8, None)
    before.acquire(None)
    cache.clear()  # the engine was put to sleep with the request running
    after = PromptBlocks(cache, "m", [1, 2], [0] * 8, None)
    after.acquire(None)
    before.release()  # ends: its references went with the clear
    assert cache.in_use == 2
    after.release()
    assert cache.in_use == 0
