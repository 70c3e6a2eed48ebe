"""The simulated prefix cache: blocks, reference counts, eviction and events (KV-3 to KV-5).

Blocks are keyed by (model, block hash). Blocks of running requests are referenced and never
evicted; when the last reference goes, a block becomes unused but stays cached, newest last (a
request's blocks tail first).
Storing into a full cache evicts the oldest unused block of a model that is not loaded (an idle
LoRA adapter) first, else the oldest unused block. A request's new blocks are announced in one
BlockStored event; every eviction in a BlockRemoved event of its own. The cache never waits: the
scheduler asks ``fits`` before it admits a request, and allocation happens as it does.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

BlockKey = tuple[str, int]


class KVEventSink(Protocol):
    """Where the cache reports its changes (the ZMQ publisher)."""

    def block_stored(
        self,
        block_hashes: list[int],
        parent_block_hash: int | None,
        token_ids: list[int],
        block_size: int,
        lora_id: int | None,
        lora_name: str | None,
    ) -> None:
        """New blocks were stored."""
        ...

    def blocks_removed(self, block_hashes: list[int]) -> None:
        """Blocks were evicted."""
        ...

    def all_blocks_cleared(self) -> None:
        """Every block was dropped."""
        ...


class KVCache:
    """``capacity`` blocks of ``block_size`` tokens, shared by every model of a rank."""

    def __init__(
        self,
        capacity: int,
        block_size: int,
        sink: KVEventSink | None = None,
        is_loaded: Callable[[str], bool] = lambda model: True,
    ):
        self.capacity = capacity
        self.block_size = block_size
        self.sink = sink
        self._is_loaded = is_loaded
        self._refs: dict[BlockKey, int] = {}
        self._unused: OrderedDict[BlockKey, int] = OrderedDict()
        """Unused cached blocks, oldest first, each with its place in that order."""
        self._unused_of: dict[str, OrderedDict[BlockKey, int]] = {}
        """The same blocks by model, so that an eviction finds an idle adapter's oldest block
        without scanning every unused block."""
        self._freed = 0
        self.in_use = 0
        self.epoch = 0
        """How many times the cache was cleared: references taken before a clear are gone."""
        self.claimed = 0
        """Blocks of generated tokens (batched engine): in use, never shared or announced."""

    def usage(self) -> float:
        """The share of the capacity referenced by running requests."""
        return self.in_use / self.capacity

    def cached_blocks(self, model: str, hashes: Sequence[int]) -> int:
        """How many leading blocks of a prompt are cached."""
        count = 0
        for block_hash in hashes:
            if (model, block_hash) not in self._refs:
                break
            count += 1
        return count

    def fits(self, model: str, hashes: Sequence[int]) -> bool:
        """Whether a prompt's blocks can be held now: referenced + new + reused idle blocks."""
        new = reused = 0
        for block_hash in hashes:
            refs = self._refs.get((model, block_hash))
            if refs is None:
                new += 1
            elif refs == 0:
                reused += 1
        return self.in_use + new + reused <= self.capacity

    def acquire(
        self,
        model: str,
        hashes: Sequence[int],
        token_ids: Sequence[int],
        lora_id: int | None = None,
        lora_name: str | None = None,
    ) -> int:
        """Reference a prompt's blocks, storing the missing ones; the cached tokens."""
        cached = self.cached_blocks(model, hashes)
        new: list[int] = []
        new_tokens: list[int] = []
        parent: int | None = None
        refs = self._refs
        for index, block_hash in enumerate(hashes):
            key = (model, block_hash)
            count = refs.get(key)
            if count is not None:
                if count == 0:
                    self._forget_unused(key)
                    self.in_use += 1
                refs[key] = count + 1
                continue
            if not new and index > 0:
                parent = hashes[index - 1]
            self._make_room()
            refs[key] = 1
            self.in_use += 1
            new.append(block_hash)
            start = index * self.block_size
            new_tokens.extend(token_ids[start : start + self.block_size])
        if new and self.sink is not None:
            self.sink.block_stored(new, parent, new_tokens, self.block_size, lora_id, lora_name)
        return cached * self.block_size

    def release(self, model: str, hashes: Sequence[int]) -> None:
        """Drop a finished request's references; unreferenced blocks stay cached, unused.
        They join the eviction order tail first (as vLLM frees them), so a shared prefix
        outlives the blocks that follow it."""
        for block_hash in reversed(hashes):
            key = (model, block_hash)
            count = self._refs[key] - 1
            self._refs[key] = count
            if count == 0:
                self.in_use -= 1
                self._freed += 1
                self._unused[key] = self._freed
                of_model = self._unused_of.get(model)
                if of_model is None:
                    of_model = self._unused_of[model] = OrderedDict()
                of_model[key] = self._freed

    def claim(self, blocks: int) -> bool:
        """Take ``blocks`` blocks for generated tokens, evicting unused cached blocks as
        needed; False (taking none) when the running requests already hold too many."""
        if self.in_use + blocks > self.capacity:
            return False
        for _ in range(blocks):
            self._make_room()
            self.claimed += 1
            self.in_use += 1
        return True

    def unclaim(self, blocks: int) -> None:
        """Give back blocks taken with ``claim``."""
        self.claimed -= blocks
        self.in_use -= blocks

    def clear(self) -> None:
        """Drop every block (sleep mode)."""
        self._refs.clear()
        self._unused.clear()
        self._unused_of.clear()
        self.epoch += 1
        self.in_use = self.claimed
        if self.sink is not None:
            self.sink.all_blocks_cleared()

    def _forget_unused(self, key: BlockKey) -> None:
        del self._unused[key]
        blocks = self._unused_of[key[0]]
        del blocks[key]
        if not blocks:
            del self._unused_of[key[0]]

    def _make_room(self) -> None:
        if len(self._refs) + self.claimed < self.capacity:
            return
        idle = [
            next(iter(blocks.items()))
            for model, blocks in self._unused_of.items()
            if blocks and not self._is_loaded(model)
        ]
        victim = min(idle, key=_place)[0] if idle else next(iter(self._unused))
        self._forget_unused(victim)
        del self._refs[victim]
        if self.sink is not None:
            self.sink.blocks_removed([victim[1]])


def _place(entry: tuple[BlockKey, int]) -> int:
    return entry[1]


class PromptBlocks:
    """One choice's prompt blocks: the resources the scheduler checks, takes and gives back."""

    __slots__ = ("_cache", "_epoch", "cached_tokens", "hashes", "lora_name", "model", "token_ids")

    def __init__(
        self,
        cache: KVCache,
        model: str,
        hashes: Sequence[int],
        token_ids: Sequence[int],
        lora_name: str | None,
    ):
        self._cache = cache
        self.model = model
        self.hashes = hashes
        self.token_ids = token_ids
        self.lora_name = lora_name
        self.cached_tokens = 0
        """Prompt tokens found in the cache when the choice started."""
        self._epoch = -1

    def fits(self) -> bool:
        """Whether the cache can hold the blocks now."""
        return self._cache.fits(self.model, self.hashes)

    def acquire(self, lora_slot: int | None) -> None:
        """Reference (and store) the blocks as the choice starts."""
        self.cached_tokens = self._cache.acquire(
            self.model, self.hashes, self.token_ids, lora_slot, self.lora_name
        )
        self._epoch = self._cache.epoch

    def release(self) -> None:
        """Drop the references as the choice ends (unless a clear dropped them already: the
        engine was put to sleep meanwhile)."""
        if self._cache.epoch == self._epoch:
            self._cache.release(self.model, self.hashes)
