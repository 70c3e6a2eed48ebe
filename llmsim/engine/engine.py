"""The engine facade: one per rank, owning the scheduler, the generator and the random source.

The server asks it, per request: ``start`` (id and random source, in arrival order), ``generate``
(the answer), and ``admission`` (a running slot and the token timeline, released on exit however
the request ends). The engine never sleeps; it only says when things are due.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from llmsim.engine.generation import Generation, Generator, Prompt
from llmsim.engine.rng import RandomSource
from llmsim.engine.scheduler import Scheduler
from llmsim.engine.timeline import TokenTimeline
from llmsim.engine.tokenizer import SimulatedTokenizer
from llmsim.plan.plan import RuntimePlan

DEFAULT_MAX_WAITING = 1000


@dataclass(slots=True)
class RequestState:
    """One request's identity, random source and arrival time."""

    request_id: str
    rng: random.Random
    arrived_at: float
    plan: RuntimePlan


class Engine:
    """A simulated vLLM engine in upstream's per-request mode."""

    def __init__(self, plan: RuntimePlan, clock: Callable[[], float] = time.perf_counter):
        self.plan = plan
        self.clock = clock
        self.tokenizer = SimulatedTokenizer()
        self.scheduler = Scheduler(plan.max_num_seqs, DEFAULT_MAX_WAITING)
        self._random = RandomSource(plan.seed, plan.port)
        self._generator = Generator(self.tokenizer, plan.response_mode, plan.model.max_model_len)

    def start(self) -> RequestState:
        """Register an arriving request: its id, its random source, the plan it will see."""
        request_id, rng = self._random.next_request()
        return RequestState(request_id, rng, self.clock(), self.plan)

    def generate(
        self, state: RequestState, prompt: Prompt, max_tokens: int | None, ignore_eos: bool
    ) -> Generation:
        """The request's answer (drawn from its own random source)."""
        return self._generator.generate(state.rng, prompt, max_tokens, ignore_eos)

    def would_wait(self) -> bool:
        """Whether a request arriving now would wait for a running slot."""
        return self.scheduler.running >= self.scheduler.max_running or self.scheduler.waiting > 0

    @asynccontextmanager
    async def admission(self, state: RequestState) -> AsyncIterator[TokenTimeline]:
        """Hold a running slot (waiting FIFO if needed) and yield the request's token timeline."""
        await self.scheduler.acquire()
        try:
            yield TokenTimeline(self.clock(), state.plan.latency, state.rng)
        finally:
            self.scheduler.release()
