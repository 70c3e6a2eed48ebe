"""Absolute token deadlines for one request (upstream's per-request latency model).

The first token is due at admission + its TTFT; token i+1 at token i's deadline + a sampled ITL,
scaled by the load factor read when that token's wait begins (LAT-1, LAT-3). Each ITL drawn is
reported to an optional observer (the inter-token latency histogram). A scripted stall pushes
every token after the first ``stall_after_tokens`` back by ``stall``. Deadlines are
absolute times on the engine's clock chained from the previous *deadline*, never from when a
writer woke up, so lateness never accumulates. They are drawn lazily, one per token, from the
request's own random source.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from llmsim.metrics.histogram import Histogram
from llmsim.plan.samplers import Constant, Sampler


class TokenTimeline:
    """Yields each token's absolute deadline, in order."""

    __slots__ = (
        "_answers",
        "_drawn",
        "_first_delay",
        "_itl",
        "_load_factor",
        "_next",
        "_observe",
        "_rng",
        "_stall",
        "_stall_after",
        "admitted",
        "first",
    )

    def __init__(
        self,
        admitted_at: float,
        first_delay: float,
        inter_token_latency: Sampler,
        rng: random.Random,
        load_factor: Callable[[], float] | None = None,
        itl_histogram: Histogram | None = None,
        stall_after_tokens: int | None = None,
        stall: float = 0.0,
        answers: bool = True,
    ):
        self.admitted = admitted_at
        self._answers = answers
        self._stall_after = stall_after_tokens
        self._stall = stall
        self._drawn = 0
        if stall_after_tokens == 0:
            first_delay += stall
        self._next = admitted_at
        self.first = admitted_at + first_delay
        """The first token's deadline."""
        self._observe = itl_histogram
        self._first_delay: float | None = first_delay
        self._itl = inter_token_latency
        self._rng = rng
        self._load_factor = load_factor

    @property
    def first_token(self) -> float | None:
        """The first token's deadline; None for an answer without tokens (cache_threshold)."""
        return self.first if self._answers else None

    @property
    def load_sensitive(self) -> bool:
        """Whether later deadlines depend on the load when they are drawn."""
        return self._load_factor is not None

    def next_deadline(self) -> float:
        """The deadline of the next token."""
        self._drawn += 1
        if self._first_delay is not None:
            self._next = self.first
            self._first_delay = None
            return self._next
        if self._drawn - 1 == self._stall_after:
            self._next += self._stall
        if self._load_factor is None:
            gap = self._itl.sample(self._rng)
        else:
            gap = self._itl.sample(self._rng, self._load_factor())
        if self._observe is not None:
            self._observe.observe(gap)
        self._next += gap
        return self._next

    @property
    def last(self) -> float:
        """The deadline of the latest token drawn so far."""
        return self._next

    def last_deadline(self, tokens: int) -> float:
        """Advance through ``tokens`` tokens at once; the deadline of the last of them. A
        constant ITL without a stall is one multiplication (and one histogram update)."""
        itl = self._itl
        if (
            type(itl) is Constant
            and self._stall_after is None
            and self._load_factor is None
            and self._first_delay is not None
            and tokens > 0
        ):
            self._drawn += tokens
            self._first_delay = None
            gaps = tokens - 1
            if gaps and self._observe is not None:
                self._observe.observe_many(itl.value, gaps)
            self._next = self.first + gaps * itl.value
            return self._next
        deadline = self._next
        for _ in range(tokens):
            deadline = self.next_deadline()
        return deadline
