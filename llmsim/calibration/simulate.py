"""A reference run of the batched engine's timing model on a trace's arrivals, without a server.

The same model the engine loop executes (vLLM V1's scheduler, simplified): a request joins the
waiting queue ``overhead.base + overhead.per_input_token x prompt`` after it arrives; every step
gives each decoding sequence one token, then continues the prompts being prefilled, then admits
waiting requests first come, first served (``max_num_seqs``, the KV cache) with chunks of their
prompts, all under ``max_num_batched_tokens``; a step lasts ``base + per_prefill_token x prompt
tokens + per_decode_token x decoding sequences + per_context_token x context tokens``; the step
that completes a prompt emits its first token, each later step one more; a request ends
``per_output_token x output tokens`` after its last step. With a KV cache (tokens, in blocks of
16), admission needs the prompt's blocks, and a sequence that cannot grow preempts the latest
admitted one (which recomputes when admitted again), as vLLM does.

``calibrate`` uses it to say how well fitted coefficients reproduce the recorded latencies, and
the tests use it to make traces with known coefficients. It reads no clock and sleeps nowhere.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

BLOCK_SIZE = 16


@dataclass(frozen=True, slots=True)
class StepCoefficients:
    """Step duration = base + per_prefill_token x prompt tokens computed + per_decode_token x
    decoding sequences + per_context_token x context tokens of the step's sequences (seconds)."""

    base: float
    per_prefill_token: float
    per_decode_token: float
    per_context_token: float = 0.0

    def step(self, prefill: int, decodes: int, context: int) -> float:
        """The duration of a step of this composition."""
        return (
            self.base
            + self.per_prefill_token * prefill
            + self.per_decode_token * decodes
            + self.per_context_token * context
        )


@dataclass(frozen=True, slots=True)
class OverheadCoefficients:
    """Per-request time outside the steps (seconds): before queueing ``base + per_input_token
    x prompt tokens``; after the last step ``per_output_token x output tokens``."""

    base: float = 0.0
    per_input_token: float = 0.0
    per_output_token: float = 0.0


@dataclass(frozen=True, slots=True)
class SimRequest:
    """A request to simulate: when it arrives and how many tokens in and out."""

    arrival: float
    prompt_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class SimResult:
    """What the engine model makes of one request (absolute times on the arrivals' clock)."""

    arrival: float
    queued: float
    """When it joined the waiting queue (its arrival plus the input overhead)."""
    picked: float
    """When the engine took it in: the first step start at or after ``queued`` (vLLM's
    engine core reads new requests between steps; this is its ``queued`` timestamp)."""
    scheduled: float
    first_token: float
    last_token: float
    end: float
    preempted: int

    @property
    def ttft(self) -> float:
        return self.first_token - self.arrival

    @property
    def e2e(self) -> float:
        return self.end - self.arrival

    @property
    def queue(self) -> float:
        """As vLLM traces it: from being taken in to the first schedule."""
        return self.scheduled - self.picked

    @property
    def prefill(self) -> float:
        return self.first_token - self.scheduled

    @property
    def decode(self) -> float:
        return self.last_token - self.first_token


@dataclass(frozen=True, slots=True)
class SimStep:
    """One step of the engine model: when, and what it computed."""

    start: float
    end: float
    prefill_tokens: int
    decodes: int
    context: int


class _Seq:
    __slots__ = (
        "blocks",
        "computed",
        "emitted",
        "first",
        "index",
        "join",
        "last",
        "output",
        "picked",
        "preempted",
        "prompt",
        "scheduled",
    )

    def __init__(self, index: int, join: float, prompt: int, output: int):
        self.index = index
        self.join = join
        self.prompt = max(prompt, 1)
        self.output = max(output, 1)
        self.computed = 0
        self.emitted = 0
        self.blocks = 0
        self.picked = 0.0
        self.scheduled: float | None = None
        self.first: float | None = None
        self.last = 0.0
        self.preempted = 0

    @property
    def context(self) -> int:
        return self.prompt + self.emitted

    @property
    def decoding(self) -> bool:
        return self.emitted > 0 and self.computed == self.context - 1


def _blocks(tokens: int) -> int:
    return -(-tokens // BLOCK_SIZE)


def simulate(
    requests: Sequence[SimRequest],
    step: StepCoefficients,
    overhead: OverheadCoefficients = OverheadCoefficients(),
    max_num_batched_tokens: int = 8192,
    max_num_seqs: int = 256,
    kv_cache_tokens: int | None = None,
    steps: list[SimStep] | None = None,
) -> list[SimResult]:
    """Each request's times under the engine model, in the order of ``requests``; every step
    is appended to ``steps`` when it is given."""
    seqs = [
        _Seq(
            index,
            r.arrival + overhead.base + overhead.per_input_token * r.prompt_tokens,
            r.prompt_tokens,
            r.output_tokens,
        )
        for index, r in enumerate(requests)
    ]
    arrivals = deque(sorted(seqs, key=lambda s: (s.join, s.index)))
    free_blocks = _blocks(kv_cache_tokens) if kv_cache_tokens is not None else None
    waiting: deque[_Seq] = deque()
    running: list[_Seq] = []
    done = 0
    now = 0.0

    def grow(seq: _Seq, tokens: int) -> bool:
        nonlocal free_blocks
        if free_blocks is None:
            return True
        need = _blocks(seq.computed + tokens) - seq.blocks
        if need <= 0:
            return True
        if need > free_blocks:
            return False
        free_blocks -= need
        seq.blocks += need
        return True

    def release(seq: _Seq) -> None:
        nonlocal free_blocks
        if free_blocks is not None:
            free_blocks += seq.blocks
        seq.blocks = 0

    while done < len(seqs):
        while arrivals and arrivals[0].join <= now:
            arrivals[0].picked = now
            waiting.append(arrivals.popleft())
        if not running and not waiting:
            now = arrivals[0].join
            continue
        budget = max_num_batched_tokens
        members: list[tuple[_Seq, int]] = []
        prefill = decodes = 0
        preempted = False
        prefilling: list[_Seq] = []
        for seq in list(running):
            if seq not in running:
                continue
            if not seq.decoding:
                prefilling.append(seq)
                continue
            if budget <= 0:
                continue
            while not grow(seq, 1):
                victim = running.pop()
                release(victim)
                victim.computed = 0
                victim.preempted += 1
                waiting.appendleft(victim)
                preempted = True
                if victim is seq:
                    break
            if seq in running:
                members.append((seq, 1))
                decodes += 1
                budget -= 1
        for seq in prefilling:
            if budget <= 0 or seq not in running:
                continue
            chunk = min(seq.context - seq.computed, budget)
            if grow(seq, chunk):
                members.append((seq, chunk))
                prefill += chunk
                budget -= chunk
        while not preempted and budget > 0 and waiting and len(running) < max_num_seqs:
            seq = waiting[0]
            chunk = min(seq.context - seq.computed, budget)
            if not grow(seq, chunk):
                break
            waiting.popleft()
            running.append(seq)
            if seq.scheduled is None:
                seq.scheduled = now
            members.append((seq, chunk))
            prefill += chunk
            budget -= chunk
        if not members:
            if arrivals:
                now = max(now, arrivals[0].join)
                continue
            raise RuntimeError("the engine model is stuck: a request cannot fit the KV cache")
        context = sum(seq.computed + tokens for seq, tokens in members)
        duration = step.step(prefill, decodes, context)
        if steps is not None:
            steps.append(SimStep(now, now + duration, prefill, decodes, context))
        now += duration
        for seq, tokens in members:
            seq.computed += tokens
            if seq.computed < seq.context:
                continue
            seq.emitted += 1
            if seq.first is None:
                seq.first = now
            seq.last = now
            if seq.emitted >= seq.output:
                running.remove(seq)
                release(seq)
                done += 1
    results = []
    for seq, request in zip(seqs, requests, strict=True):
        assert seq.scheduled is not None and seq.first is not None
        results.append(
            SimResult(
                arrival=request.arrival,
                queued=seq.join,
                picked=seq.picked,
                scheduled=seq.scheduled,
                first_token=seq.first,
                last_token=seq.last,
                end=seq.last + overhead.per_output_token * seq.output,
                preempted=seq.preempted,
            )
        )
    return results
