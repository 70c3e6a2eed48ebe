"""The batched engine's scheduler on a virtual clock: budget, chunked-prefill order, admission,
preemption, prefix-cache hits and step-time arithmetic. Nothing sleeps."""

from __future__ import annotations

import random
from collections.abc import Sequence as PySequence

import pytest

from llmsim.engine.batch import RUNNING, WAITING, BatchCore, Sequence, Step, step_duration
from llmsim.engine.kv_cache import KVCache
from llmsim.plan.plan import StepTimeModel

MODEL = StepTimeModel(base=0.005, per_prefill_token=0.00005, per_decode_token=0.0002)


class Sink:
    """Records when a sequence was scheduled and when its tokens came out."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.tokens: list[float] = []

    def start(self, now: float) -> None:
        self.starts.append(now)

    def token(self, now: float) -> None:
        self.tokens.append(now)


class FakeBlocks:
    """A prompt's blocks in a real KVCache."""

    def __init__(self, cache: KVCache, hashes: PySequence[int], cached_tokens: int = 0):
        self.cache = cache
        self.hashes = hashes
        self.cached_tokens = 0
        self._hit = cached_tokens

    def fits(self) -> bool:
        return self.cache.fits("m", self.hashes)

    def acquire(self, lora_slot: int | None) -> None:
        self.cache.acquire("m", self.hashes, [0] * len(self.hashes) * self.cache.block_size)
        self.cached_tokens = self._hit

    def release(self) -> None:
        self.cache.release("m", self.hashes)


def core(
    max_num_seqs: int = 8,
    budget: int = 2048,
    model: StepTimeModel = MODEL,
    pool: KVCache | None = None,
) -> BatchCore:
    return BatchCore(max_num_seqs, budget, lambda: model, random.Random(1), pool)


def seq(prompt: int, output: int, blocks: FakeBlocks | None = None) -> tuple[Sequence, Sink]:
    sink = Sink()
    return Sequence(prompt, output, sink, blocks), sink


def run(engine: BatchCore, now: float = 0.0) -> float:
    """Run steps back to back from ``now``; the time the last one ended."""
    while now < 100.0:
        step = engine.plan_step(now)
        if step is None:
            return now
        now += step.duration
        engine.end_step(step, now)
    return now


def members(step: Step) -> list[tuple[int, int]]:
    return [(s.prompt_tokens, tokens) for s, tokens in step.members]


def test_step_time_is_base_plus_prefill_plus_decode_plus_context() -> None:
    model = StepTimeModel(0.005, 0.00005, 0.0002, per_context_token=0.000001)
    assert step_duration(model, 100, 8, 1000, random.Random(0)) == pytest.approx(
        0.005 + 100 * 0.00005 + 8 * 0.0002 + 1000 * 0.000001
    )


def test_jitter_stays_within_three_standard_deviations() -> None:
    model = StepTimeModel(0.010, 0.0, 0.0, jitter=0.1)
    rng = random.Random(3)
    draws = [step_duration(model, 0, 0, 0, rng) for _ in range(5000)]
    assert min(draws) >= 0.010 * 0.7 - 1e-12
    assert max(draws) <= 0.010 * 1.3 + 1e-12
    assert 0.0098 < sum(draws) / len(draws) < 0.0102


def test_a_prompt_bigger_than_the_budget_is_prefilled_in_chunks() -> None:
    engine = core(budget=512)
    s, sink = seq(1200, 2)
    engine.add(s)
    chunks = []
    now = 0.0
    while (step := engine.plan_step(now)) is not None:
        chunks.append(members(step))
        now += step.duration
        engine.end_step(step, now)
    assert chunks == [[(1200, 512)], [(1200, 512)], [(1200, 176)], [(1200, 1)]]
    # The first token leaves with the step that completes the prompt, the second one step later.
    first_steps = 0.005 * 3 + 1200 * 0.00005
    assert sink.tokens == pytest.approx([first_steps, first_steps + 0.005 + 0.0002])


def test_decodes_go_first_then_running_prefills_then_new_admissions() -> None:
    engine = core(budget=100)
    a, _ = seq(10, 5)
    b, _ = seq(150, 5)
    engine.add(a)
    engine.add(b)
    first = engine.plan_step(0.0)
    assert first is not None
    assert members(first) == [(10, 10), (150, 90)]
    engine.end_step(first, first.duration)
    c, _ = seq(30, 5)
    engine.add(c)
    second = engine.plan_step(first.duration)
    assert second is not None
    # a decodes (1), b's prompt goes on (60 left), c is admitted with what remains (30 of 39).
    assert members(second) == [(10, 1), (150, 60), (30, 30)]
    assert (second.prefill_tokens, second.decode_tokens) == (90, 1)


def test_admission_is_first_come_first_served_within_max_num_seqs() -> None:
    engine = core(max_num_seqs=2)
    seqs = [seq(10, 3) for _ in range(3)]
    for s, _ in seqs:
        engine.add(s)
    step = engine.plan_step(0.0)
    assert step is not None
    assert [s for s, _ in step.members] == [seqs[0][0], seqs[1][0]]
    assert seqs[2][0].state == WAITING
    end = run(engine)
    # The third starts in the step after the first two finish, at that step's start.
    assert seqs[2][1].starts == [pytest.approx(seqs[0][1].tokens[-1])]
    assert end > seqs[0][1].tokens[-1]


def test_tokens_of_one_step_leave_together_and_itl_follows_the_batch() -> None:
    engine = core(max_num_seqs=64)
    seqs = [seq(1, 20) for _ in range(32)]
    for s, _ in seqs:
        engine.add(s)
    run(engine)
    times = [sink.tokens for _, sink in seqs]
    assert all(t == times[0] for t in times)
    gaps = [b - a for a, b in zip(times[0], times[0][1:], strict=False)]
    assert gaps == pytest.approx([0.005 + 32 * 0.0002] * 19)


def test_a_long_prompt_slows_the_decodes_beside_it_while_it_is_prefilled() -> None:
    engine = core(max_num_seqs=16, budget=512)
    decoders = [seq(1, 40) for _ in range(8)]
    for s, _ in decoders:
        engine.add(s)
    now = 0.0
    for _ in range(5):  # the decoders are decoding
        step = engine.plan_step(now)
        assert step is not None
        now += step.duration
        engine.end_step(step, now)
    long, long_sink = seq(2000, 2)
    engine.add(long)
    durations = []
    while not long_sink.tokens:
        step = engine.plan_step(now)
        assert step is not None
        durations.append(step.duration)
        now += step.duration
        engine.end_step(step, now)
    # Four steps of 504 prompt tokens (512 minus the 8 decodes) ... each 8 decodes + a chunk.
    assert durations[0] == pytest.approx(0.005 + 8 * 0.0002 + 504 * 0.00005)
    assert len(durations) == 4
    after = engine.plan_step(now)
    assert after is not None
    assert after.prefill_tokens == 0


def test_prefix_cache_hits_are_not_recomputed() -> None:
    cache = KVCache(capacity=100, block_size=16)
    engine = core(pool=cache)
    blocks = FakeBlocks(cache, list(range(10)), cached_tokens=128)
    s, _ = seq(160, 2, blocks)
    engine.add(s)
    step = engine.plan_step(0.0)
    assert step is not None
    assert members(step) == [(160, 32)]


def test_a_fully_cached_prompt_still_computes_one_token() -> None:
    cache = KVCache(capacity=100, block_size=16)
    engine = core(pool=cache)
    s, _ = seq(160, 2, FakeBlocks(cache, list(range(10)), cached_tokens=160))
    engine.add(s)
    step = engine.plan_step(0.0)
    assert step is not None
    assert members(step) == [(160, 1)]


def test_a_full_cache_preempts_the_latest_admitted_and_requeues_it_first() -> None:
    cache = KVCache(capacity=4, block_size=16)
    engine = core(pool=cache)
    a, a_sink = seq(16, 40, FakeBlocks(cache, [1]))
    b, b_sink = seq(16, 40, FakeBlocks(cache, [2]))
    engine.add(a)
    engine.add(b)
    now = 0.0
    while engine.preemptions == 0:
        step = engine.plan_step(now)
        assert step is not None
        now += step.duration
        engine.end_step(step, now)
    assert (a.state, b.state) == (RUNNING, WAITING)
    assert engine.waiting[0] is b
    assert b.computed == 0
    assert cache.in_use <= cache.capacity
    run(engine, now)
    # b was admitted again (each time a preemption freed room), recomputed and went on.
    assert len(b_sink.starts) == 1 + engine.preemptions
    assert len(a_sink.tokens) == 40 and len(b_sink.tokens) == 40
    assert cache.in_use == 0


def test_a_removed_sequence_frees_its_blocks_and_emits_nothing_more() -> None:
    cache = KVCache(capacity=10, block_size=16)
    engine = core(pool=cache)
    s, sink = seq(40, 10, FakeBlocks(cache, [1, 2]))
    engine.add(s)
    step = engine.plan_step(0.0)
    assert step is not None
    engine.remove(s)
    engine.end_step(step, step.duration)
    assert sink.tokens == []
    assert cache.in_use == 0
    assert engine.plan_step(step.duration) is None
