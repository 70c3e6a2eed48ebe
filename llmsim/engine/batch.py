"""The continuous-batching engine's scheduler (``engine.mode: batched``), on any clock.

Every step, as vLLM's V1 scheduler: each running sequence that is decoding gets one token;
then running sequences still in their prompt get chunks of it; then waiting sequences are
admitted first come, first served, while ``max-num-seqs``, their LoRA adapter and the KV cache
allow, each with a first chunk — all under the step's token budget (``max-num-batched-tokens``).
The step lasts what the step-time model says for that batch. At its end every scheduled
sequence advances; one whose computed tokens reach its context (the prompt, plus the tokens it
had generated before a preemption) emits its next token. Tokens of one step leave together.

With a KV cache, an admitted sequence holds its prompt's blocks (prefix-cache hits are not
recomputed) and takes one more block whenever its tokens outgrow those it holds. When a
decoding sequence cannot have its next block, the latest-admitted running sequence is preempted:
its blocks are freed, it goes back to the head of the queue and, when admitted again, recomputes
its prompt and the tokens it had generated (vLLM's recompute preemption).

Nothing here sleeps or reads a clock: ``plan_step`` and ``end_step`` take the time.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from collections.abc import Sequence as PySequence
from dataclasses import dataclass
from typing import Protocol

from llmsim.plan.plan import StepTimeModel

WAITING, RUNNING, DONE = 0, 1, 2

JITTER_CLAMP = 3.0
"""A step's jitter is clamped at this many standard deviations."""


class TokenSink(Protocol):
    """Who hears of a sequence's tokens (its timeline)."""

    def token(self, now: float) -> None:
        """The sequence emitted its next token at ``now``."""
        ...

    def start(self, now: float) -> None:
        """The sequence was scheduled at ``now`` (again after a preemption)."""
        ...


class Blocks(Protocol):
    """A sequence's KV-cache blocks, as the scheduler needs them."""

    cached_tokens: int
    """Prompt tokens found in the prefix cache at the latest acquire."""
    hashes: PySequence[int]
    """The hashes of the prompt's full blocks."""

    def fits(self) -> bool:
        """Whether the prompt's blocks can be held now."""
        ...

    def acquire(self, lora_slot: int | None) -> None:
        """Reference (and store) the prompt's blocks."""
        ...

    def release(self) -> None:
        """Drop the prompt's blocks."""
        ...


class BlockPool(Protocol):
    """The KV cache's blocks for generated tokens (and a prompt's last partial block)."""

    block_size: int

    def claim(self, blocks: int) -> bool:
        """Take ``blocks`` more blocks; False (taking none) when they cannot be had."""
        ...

    def unclaim(self, blocks: int) -> None:
        """Give back blocks taken with ``claim``."""
        ...


class Sequence:
    """One choice in the engine: its sizes, progress and where its tokens go."""

    __slots__ = (
        "adapter",
        "blocks",
        "claimed",
        "computed",
        "emitted",
        "output_tokens",
        "prompt_blocks",
        "prompt_tokens",
        "remote_prefill",
        "sink",
        "state",
    )

    def __init__(
        self,
        prompt_tokens: int,
        output_tokens: int,
        sink: TokenSink,
        blocks: Blocks | None = None,
        adapter: str | None = None,
        remote_prefill: bool = False,
    ):
        self.prompt_tokens = max(prompt_tokens, 1)
        self.output_tokens = max(output_tokens, 1)
        self.sink = sink
        self.blocks = blocks
        self.adapter = adapter
        self.remote_prefill = remote_prefill
        self.state = WAITING
        self.computed = 0
        self.emitted = 0
        self.claimed = 0
        """Blocks taken from the pool (beyond the prompt's full blocks)."""
        self.prompt_blocks = 0
        """The prompt's full blocks held through ``blocks``."""

    @property
    def context(self) -> int:
        """Tokens to compute before the next token: the prompt and the tokens emitted."""
        return self.prompt_tokens + self.emitted

    @property
    def decoding(self) -> bool:
        """Whether its next step computes one token (the last emitted) and emits one."""
        return self.emitted > 0 and self.computed == self.context - 1


@dataclass(slots=True)
class Step:
    """One engine step: who is in it with how many tokens, and how long it lasts."""

    members: list[tuple[Sequence, int]]
    prefill_tokens: int
    decode_tokens: int
    duration: float

    @property
    def tokens(self) -> int:
        """Tokens computed in the step (vLLM's ``iteration_tokens``)."""
        return self.prefill_tokens + self.decode_tokens


def step_duration(
    model: StepTimeModel, prefill: int, decodes: int, context: int, rng: random.Random
) -> float:
    """The step time of a batch, with the model's jitter drawn from ``rng``."""
    duration = (
        model.base
        + model.per_prefill_token * prefill
        + model.per_decode_token * decodes
        + model.per_context_token * context
    )
    if model.jitter > 0:
        draw = min(max(rng.gauss(0.0, 1.0), -JITTER_CLAMP), JITTER_CLAMP)
        duration *= max(1.0 + model.jitter * draw, 0.0)
    return duration


class BatchCore:
    """The waiting queue, the running set and the step builder of one engine."""

    def __init__(
        self,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        step_time: Callable[[], StepTimeModel],
        rng: random.Random,
        pool: BlockPool | None = None,
        can_run: Callable[[str | None], bool] = lambda adapter: True,
        on_start: Callable[[Sequence], int | None] = lambda seq: None,
        on_stop: Callable[[Sequence], None] = lambda seq: None,
    ):
        self.max_num_seqs = max_num_seqs
        self.max_num_batched_tokens = max_num_batched_tokens
        self._step_time = step_time
        self._rng = rng
        self.pool = pool
        self._can_run = can_run
        self._on_start = on_start
        """Told when a sequence enters the running set; gives its LoRA slot (or None)."""
        self._on_stop = on_stop
        """Told when a sequence leaves the running set (finished, preempted or withdrawn)."""
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.preemptions = 0

    def add(self, seq: Sequence) -> None:
        """A sequence joins the back of the queue."""
        seq.state = WAITING
        self.waiting.append(seq)

    def remove(self, seq: Sequence) -> None:
        """A sequence leaves, wherever it is (its client went away, or it finished)."""
        if seq.state == RUNNING:
            self.running.remove(seq)
            self._free(seq)
        elif seq.state == WAITING:
            self.waiting.remove(seq)
        seq.state = DONE

    def plan_step(self, now: float) -> Step | None:
        """The batch and duration of the step starting at ``now``; None when there is
        nothing to compute."""
        step = Step([], 0, 0, 0.0)
        budget = self.max_num_batched_tokens
        preempted = self.preemptions
        prefilling: list[Sequence] = []
        for seq in list(self.running):
            if seq.state != RUNNING:
                continue  # preempted for an earlier sequence's block
            if not seq.decoding:
                prefilling.append(seq)
            elif budget > 0 and self._grow(seq, 1, preempt=True):
                step.members.append((seq, 1))
                step.decode_tokens += 1
                budget -= 1
        for seq in prefilling:
            if budget > 0 and seq.state == RUNNING:
                budget -= self._prefill(step, seq, budget)
        # As in vLLM, no admission in a step that had to preempt.
        while (
            budget > 0 and len(self.running) < self.max_num_seqs and preempted == self.preemptions
        ):
            admitted = self._next_admissible()
            if admitted is None or not self._admit(admitted, now):
                break
            taken = self._prefill(step, admitted, budget)
            if not taken:
                break
            budget -= taken
        if not step.members:
            return None
        context = sum(seq.computed + tokens for seq, tokens in step.members)
        step.duration = step_duration(
            self._step_time(), step.prefill_tokens, step.decode_tokens, context, self._rng
        )
        return step

    def _prefill(self, step: Step, seq: Sequence, budget: int) -> int:
        """Put the next chunk of ``seq``'s prompt in the step; the tokens taken (0 when its
        blocks cannot be had)."""
        chunk = min(seq.context - seq.computed, budget)
        if not self._grow(seq, chunk, preempt=False):
            return 0
        step.members.append((seq, chunk))
        step.prefill_tokens += chunk
        return chunk

    def end_step(self, step: Step, now: float) -> None:
        """The step is over at ``now``: its sequences advance and emit their tokens; the
        ones with all their tokens out leave the running set."""
        for seq, tokens in step.members:
            if seq.state != RUNNING:
                continue
            seq.computed += tokens
            if seq.computed < seq.context:
                continue
            seq.emitted += 1
            if seq.emitted >= seq.output_tokens:
                self.running.remove(seq)
                self._free(seq)
                seq.state = DONE
            seq.sink.token(now)

    def _next_admissible(self) -> Sequence | None:
        """The first waiting sequence whose adapter can run (the base model always can)."""
        for seq in self.waiting:
            if self._can_run(seq.adapter):
                return seq
        return None

    def _admit(self, seq: Sequence, now: float) -> bool:
        blocks = seq.blocks
        if blocks is not None and not blocks.fits():
            return False
        self.waiting.remove(seq)
        seq.state = RUNNING
        self.running.append(seq)
        slot = self._on_start(seq)
        seq.computed = 0
        if blocks is not None:
            blocks.acquire(slot)
            seq.prompt_blocks = len(blocks.hashes)
            # Prefix-cache hits are not recomputed, but at least one token is (as in vLLM).
            seq.computed = min(blocks.cached_tokens, seq.context - 1)
        if seq.remote_prefill:
            seq.computed = max(seq.computed, seq.context - 1)
        seq.sink.start(now)
        return True

    def _grow(self, seq: Sequence, tokens: int, preempt: bool) -> bool:
        """Make room for ``tokens`` more tokens of ``seq``; with ``preempt``, preempt the
        latest-admitted sequences until there is (False if ``seq`` itself was preempted)."""
        pool = self.pool
        if pool is None or seq.blocks is None:
            return True
        size = pool.block_size
        needed = -(-(seq.computed + tokens) // size) - seq.prompt_blocks - seq.claimed
        if needed <= 0:
            return True
        while not pool.claim(needed):
            if not preempt:
                return False
            victim = self.running[-1]  # the latest admitted: admission appends
            self._preempt(victim)
            if victim is seq:
                return False
        seq.claimed += needed
        return True

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self._free(seq)
        seq.state = WAITING
        seq.computed = 0
        self.waiting.appendleft(seq)
        self.preemptions += 1

    def _free(self, seq: Sequence) -> None:
        if seq.blocks is not None:
            seq.blocks.release()
            if self.pool is not None and seq.claimed:
                self.pool.unclaim(seq.claimed)
        seq.claimed = 0
        seq.prompt_blocks = 0
        self._on_stop(seq)
