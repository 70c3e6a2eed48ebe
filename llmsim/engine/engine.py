"""The engine facade: one per rank, owning the scheduler, the generator, the random source and
the metrics recorder.

Per request the server asks it: ``start`` (id and random source, in arrival order), its
``generator`` (a choice's answer), ``reserve`` (a running slot or queue place per choice, all or
none), and ``running`` (wait for the slot, then the choice's token timeline; on exit the slot is
freed and the outcome recorded, however the choice ended). The engine never sleeps; it only says
when things are due.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from llmsim.engine.generation import Generation, Generator, Prompt
from llmsim.engine.latency import first_token_delay, load_factor
from llmsim.engine.lora import LoraRegistry
from llmsim.engine.rng import RandomSource
from llmsim.engine.scheduler import Scheduler, Ticket
from llmsim.engine.timeline import TokenTimeline
from llmsim.engine.tokenizer import SimulatedTokenizer
from llmsim.errors import LlmsimError, NotFound
from llmsim.metrics.recorder import ChoiceTiming, MetricsRecorder
from llmsim.plan.plan import RuntimePlan


@dataclass(slots=True)
class RequestState:
    """One request: identity, random source, arrival, the plan it sees and its options."""

    request_id: str
    rng: random.Random
    arrived_at: float
    plan: RuntimePlan
    max_tokens: int | None = None
    remote_prefill: bool = False
    adapter: str | None = None
    """The LoRA adapter the request runs on (None: the base model)."""

    @property
    def display_model(self) -> str:
        """The ``model`` shown in responses: the adapter's name, or the first served name."""
        return self.adapter if self.adapter is not None else self.plan.model.display_name


@dataclass(slots=True)
class Choice:
    """One choice (sub-request) of a response: its prompt, answer, random source and slot."""

    index: int
    prompt: Prompt
    rng: random.Random
    generation: Generation
    ticket: Ticket


class Engine:
    """A simulated vLLM engine in upstream's per-request mode."""

    def __init__(self, plan: RuntimePlan, clock: Callable[[], float] = time.perf_counter):
        self.plan = plan
        self.clock = clock
        self.tokenizer = SimulatedTokenizer()
        self.metrics = MetricsRecorder(plan.model.max_model_len)
        self.scheduler = Scheduler(
            plan.max_num_seqs,
            plan.max_waiting_queue_length,
            plan.max_loras,
            self.metrics.lora_changed,
        )
        self.loras = LoraRegistry(list(plan.lora_modules))
        self._random = RandomSource(plan.seed, plan.port)
        self.generator = Generator(self.tokenizer, plan.response_mode, plan.model.max_model_len)

    def start(
        self,
        seed: int | None = None,
        prompt_text: str = "",
        max_tokens: int | None = None,
        remote_prefill: bool = False,
        adapter: str | None = None,
    ) -> RequestState:
        """Register an arriving request: its id, its random source, the plan it will see.

        With a request ``seed`` the random source depends only on the seed and the prompt, so
        the same request gives the same answer whatever came before it, as with vLLM.
        """
        request_id, rng = self._random.next_request()
        if seed is not None:
            rng = random.Random(f"{seed}:{prompt_text}")
        return RequestState(
            request_id, rng, self.clock(), self.plan, max_tokens, remote_prefill, adapter
        )

    def resolve_model(self, name: str) -> str | None:
        """The adapter a request's ``model`` names (None: the base model); 404 if neither."""
        if name in self.plan.model.served_names:
            return None
        if name in self.loras:
            return name
        raise NotFound(f"The model `{name}` does not exist.")

    def reserve(self, count: int, adapter: str | None = None) -> list[Ticket]:
        """A slot or a queue place for each of ``count`` choices; none if any cannot be had."""
        tickets: list[Ticket] = []
        try:
            for _ in range(count):
                tickets.append(self.scheduler.reserve(adapter))
        except LlmsimError:
            for ticket in tickets:
                ticket.give_back()
            raise
        return tickets

    @asynccontextmanager
    async def running(self, state: RequestState, choice: Choice) -> AsyncIterator[TokenTimeline]:
        """Wait for the choice's slot, then yield its token timeline; on exit free the slot and
        record the outcome (finished, or aborted when the client went away)."""
        plan = state.plan
        latency = plan.latency
        try:
            await choice.ticket.wait()
            admitted = self.clock()
            running = self.scheduler.running
            factor = load_factor(latency, running, plan.max_num_seqs)
            delay = first_token_delay(
                latency, choice.rng, choice.prompt.tokens, 0, state.remote_prefill, factor
            )
            dynamic = latency.time_factor_under_load != 1.0
            timeline = TokenTimeline(
                admitted,
                delay,
                latency.inter_token_latency,
                choice.rng,
                (lambda: load_factor(latency, self.scheduler.running, plan.max_num_seqs))
                if dynamic
                else None,
                self.metrics.inter_token_latency.observe,
            )
            yield timeline
            timing = ChoiceTiming(
                arrived=state.arrived_at,
                admitted=admitted,
                first_token=timeline.first,
                finished=max(self.clock(), timeline.last),
                tokens=len(choice.generation.tokens),
            )
            self.metrics.choice_finished(
                timing, choice.prompt.tokens, state.max_tokens, choice.generation.finish_reason
            )
        except asyncio.CancelledError:
            self.metrics.choice_aborted()
            raise
        finally:
            choice.ticket.give_back()
