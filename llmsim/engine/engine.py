"""The engine facade: one per rank, owning the scheduler, the generator and the random source.

Per request the server asks it: ``start`` (id and random source, in arrival order), ``generate``
(a choice's answer), ``reserve`` (a running slot or queue place per choice, all or none), and
``running`` (wait for the slot, then the choice's token timeline; the slot is freed on exit
however the choice ends). The engine never sleeps; it only says when things are due.
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from llmsim.engine.generation import Generation, Generator, Prompt
from llmsim.engine.latency import first_token_delay, load_factor
from llmsim.engine.rng import RandomSource
from llmsim.engine.scheduler import Scheduler, Ticket
from llmsim.engine.timeline import TokenTimeline
from llmsim.engine.tokenizer import SimulatedTokenizer
from llmsim.errors import LlmsimError
from llmsim.plan.plan import RuntimePlan


@dataclass(slots=True)
class RequestState:
    """One request's identity, random source, arrival time and the plan it sees."""

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
        self.scheduler = Scheduler(plan.max_num_seqs, plan.max_waiting_queue_length)
        self._random = RandomSource(plan.seed, plan.port)
        self._generator = Generator(self.tokenizer, plan.response_mode, plan.model.max_model_len)

    def start(self, seed: int | None = None, prompt_text: str = "") -> RequestState:
        """Register an arriving request: its id, its random source, the plan it will see.

        With a request ``seed`` the random source depends only on the seed and the prompt, so
        the same request gives the same answer whatever came before it, as with vLLM.
        """
        request_id, rng = self._random.next_request()
        if seed is not None:
            rng = random.Random(f"{seed}:{prompt_text}")
        return RequestState(request_id, rng, self.clock(), self.plan)

    def generate(
        self,
        rng: random.Random,
        prompt: Prompt,
        max_tokens: int | None,
        ignore_eos: bool,
        min_tokens: int = 0,
    ) -> Generation:
        """A choice's answer, drawn from ``rng``."""
        return self._generator.generate(rng, prompt, max_tokens, ignore_eos, min_tokens)

    def reserve(self, count: int) -> list[Ticket]:
        """A slot or a queue place for each of ``count`` choices; none if any cannot be had."""
        tickets: list[Ticket] = []
        try:
            for _ in range(count):
                tickets.append(self.scheduler.reserve())
        except LlmsimError:
            for ticket in tickets:
                ticket.give_back()
            raise
        return tickets

    def load_factor(self) -> float:
        """The current time factor under load (LAT-3)."""
        return load_factor(self.plan.latency, self.scheduler.running, self.plan.max_num_seqs)

    @asynccontextmanager
    async def running(
        self,
        state: RequestState,
        ticket: Ticket,
        rng: random.Random,
        prompt: Prompt,
        remote_prefill: bool = False,
    ) -> AsyncIterator[TokenTimeline]:
        """Wait for the ticket's slot, then yield the choice's token timeline; free the slot
        on exit."""
        try:
            await ticket.wait()
            latency = state.plan.latency
            factor = self.load_factor()
            delay = first_token_delay(latency, rng, prompt.tokens, 0, remote_prefill, factor)
            dynamic = latency.time_factor_under_load != 1.0
            yield TokenTimeline(
                self.clock(),
                delay,
                latency.inter_token_latency,
                rng,
                self.load_factor if dynamic else None,
            )
        finally:
            ticket.give_back()
