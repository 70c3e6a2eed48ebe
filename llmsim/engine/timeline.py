"""Absolute token deadlines for one request (upstream's per-request latency model).

The first token is due at admission + a sampled TTFT; token i+1 at token i's deadline + a sampled
ITL. Deadlines are absolute times on the engine's clock and are chained from the previous
*deadline*, never from when a writer woke up, so lateness never accumulates. Deadlines are drawn
lazily, one per token, from the request's own random source.
"""

from __future__ import annotations

import random

from llmsim.plan.plan import LatencyPlan
from llmsim.plan.samplers import Sampler


class TokenTimeline:
    """Yields each token's absolute deadline, in order."""

    __slots__ = ("_itl", "_next", "_rng", "_ttft")

    def __init__(self, admitted_at: float, latency: LatencyPlan, rng: random.Random):
        self._rng = rng
        self._ttft: Sampler | None = latency.time_to_first_token
        self._itl = latency.inter_token_latency
        self._next = admitted_at

    def next_deadline(self) -> float:
        """The deadline of the next token."""
        if self._ttft is not None:
            self._next += self._ttft.sample(self._rng)
            self._ttft = None
        else:
            self._next += self._itl.sample(self._rng)
        return self._next

    def last_deadline(self, tokens: int) -> float:
        """Advance through ``tokens`` tokens at once; the deadline of the last of them."""
        deadline = self._next
        for _ in range(tokens):
            deadline = self.next_deadline()
        return deadline
