"""The engine facade: one per rank, owning the scheduler, the generator, the random source, the
prefix cache and the metrics recorder.

Per request the server asks it: ``start`` (id and random source, in arrival order), its
``generator`` (a choice's answer), ``reserve`` (a running slot or queue place per choice, all or
none, with the choice's KV blocks), and ``running`` (wait for the slot, then the choice's token
timeline; on exit the slot and blocks are freed and the outcome recorded, however the choice
ended). The engine never sleeps; it only says when things are due.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmsim.datasets.download import ensure_dataset
from llmsim.datasets.store import SqliteDataset
from llmsim.engine.batch_loop import BatchScheduler, BatchTicket
from llmsim.engine.block_hash import block_hashes, root_hash
from llmsim.engine.generation import FINISH_CACHE_THRESHOLD, Generation, Generator, Prompt
from llmsim.engine.kv_cache import KVCache, PromptBlocks
from llmsim.engine.latency import first_token_delay, load_factor
from llmsim.engine.lora import LoraRegistry
from llmsim.engine.rng import RandomSource
from llmsim.engine.scheduler import Scheduler, Ticket
from llmsim.engine.timeline import StepTimeline, TokenTimeline
from llmsim.engine.tokenizer import Tokenizer, load_tokenizer
from llmsim.errors import BadRequest, LlmsimError, NotFound, ScriptedDisconnect
from llmsim.metrics.recorder import MetricsRecorder
from llmsim.plan.compile import phase_plan
from llmsim.plan.phases import PhaseClock
from llmsim.plan.plan import BatchedPlan, LatencyPlan, RuntimePlan

log = logging.getLogger("llmsim")


@dataclass(slots=True)
class RequestState:
    """One request: identity, random source, arrival, the plan it sees and its options."""

    request_id: str
    rng: random.Random
    """Where the answer's content is drawn from: the engine's shared source while the request
    is drawn in arrival order, else the request's own (``use_own_rng``)."""
    key: int
    """The seed of the request's own random source."""
    arrived_at: float
    plan: RuntimePlan
    max_tokens: int | None = None
    remote_prefill: bool = False
    adapter: str | None = None
    """The LoRA adapter the request runs on (None: the base model)."""
    cache_hit_threshold: float | None = None
    """Below this prefix-cache hit rate the request finishes with cache_threshold (KV-6)."""
    force_cache_threshold: bool = False
    """The client asked for a cache_threshold answer (HDR-4)."""
    latency: LatencyPlan | None = None
    """A rule's latency for this request, instead of the plan's."""
    stall_after_tokens: int | None = None
    stall: float = 0.0
    own: random.Random | None = None
    """The request's own random source, once made."""

    def own_rng(self) -> random.Random:
        """The request's own random source, made on first use."""
        if self.own is None:
            self.own = random.Random(self.key)
        return self.own

    def use_own_rng(self) -> None:
        """Draw the content from the request's own source: other requests may have drawn
        from the shared one since this one arrived."""
        self.rng = self.own_rng()

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
    ticket: Ticket | BatchTicket
    cached_tokens: int = 0
    """Prompt tokens found in the prefix cache when the choice started."""


def open_dataset(plan: RuntimePlan, tokenizer: Tokenizer) -> SqliteDataset | None:
    """The plan's response dataset, downloaded first if it is missing (DS-1, DS-4)."""
    source = plan.dataset
    if source is None:
        return None
    path = ensure_dataset(Path(source.path), source.url)
    dataset = SqliteDataset.open(path, tokenizer, source.table, source.in_memory)
    log.info("answering from dataset %s (%d rows)", path, len(dataset))
    return dataset


class Engine:
    """A simulated vLLM engine in upstream's per-request mode."""

    def __init__(self, plan: RuntimePlan, clock: Callable[[], float] = time.perf_counter):
        self.base_plan = plan
        self.clock = clock
        self.phases = PhaseClock(plan.phases)
        self._phase_plans: dict[tuple[int, ...], RuntimePlan] = {(): plan}
        self._active: tuple[int, ...] = ()
        self.tokenizer: Tokenizer = load_tokenizer(
            plan.model.tokenizer_path, plan.model.tokenizer_model_id
        )
        self.metrics = MetricsRecorder(plan.model.max_model_len)
        self.loras = LoraRegistry(list(plan.lora_modules))
        self.generator = Generator(
            self.tokenizer, plan.model.max_model_len, open_dataset(plan, self.tokenizer)
        )
        self.kv: KVCache | None = None
        if plan.kv is not None:
            self.kv = KVCache(plan.kv.capacity, plan.kv.block_size, is_loaded=self._is_loaded)
        self.batch: BatchScheduler | None = None
        self.scheduler: Scheduler
        if plan.batched is None:
            self.scheduler = Scheduler(
                plan.max_num_seqs,
                plan.max_waiting_queue_length,
                plan.max_loras,
                self.metrics.lora_changed,
            )
        else:
            self.scheduler = self.batch = BatchScheduler(
                plan.max_num_seqs,
                plan.max_waiting_queue_length,
                plan.max_loras,
                self.metrics.lora_changed,
                self._batched_plan,
                self.metrics,
                random.Random(f"{plan.seed}:steps"),
                self.kv,
                clock,
            )
            self.metrics.engine_loop = True
        self.sleeping = False
        self.kv_awake = True
        """False after a sleep until a wake-up that includes the KV cache (SLEEP-2)."""
        self._random = RandomSource(plan.seed, plan.port)
        self._roots: dict[str, int] = {}

    @property
    def plan(self) -> RuntimePlan:
        """The plan a request arriving now sees: the base plan with the active phases."""
        if not self.base_plan.phases:
            return self.base_plan
        active = self.phases.active()
        if active != self._active:
            names = [self.base_plan.phases[i].name for i in active]
            log.info("phase change: %s", ", ".join(names) if names else "no phase active")
            self._active = active
        plan = self._phase_plans.get(active)
        if plan is None:
            plan = self._phase_plans[active] = phase_plan(self.base_plan, active)
        return plan

    def set_base_plan(self, plan: RuntimePlan) -> None:
        """A runtime reconfiguration: the new base plan, phases overlaid as before."""
        self.base_plan = plan
        self._phase_plans = {(): plan}

    def start(self) -> RequestState:
        """Register an arriving generation request: its id and random source (drawn in
        arrival order), the time, and the plan it will see from start to end."""
        self.phases.count_request()
        request_id, key = self._random.next_request()
        return RequestState(request_id, self._random.root, key, self.clock(), self.plan)

    def reseed(self, state: RequestState, seed: int, prompt_text: str) -> None:
        """A request ``seed``: the random source then depends only on the seed and the prompt,
        so the same request gives the same answer whatever came before it, as with vLLM."""
        state.rng = state.own = random.Random(f"{seed}:{prompt_text}")

    def timing_rng(
        self, state: RequestState, choice: Choice, latency: LatencyPlan
    ) -> random.Random:
        """Where a choice's latencies are drawn from: its own source, or the request's when
        the choice shares the engine's (made only if ``latency`` draws at all)."""
        rng = choice.rng
        if rng is self._random.root and latency.random:
            return state.own_rng()
        return rng

    def resolve_model(self, name: str) -> str | None:
        """The adapter a request's ``model`` names (None: the base model); 404 if neither."""
        if name in self.plan.model.served_names:
            return None
        if name in self.loras:
            return name
        raise NotFound(f"The model `{name}` does not exist.")

    @property
    def needs_token_ids(self) -> bool:
        """Whether prompts' token ids are used (KV block hashes, dataset keys), not only
        their count."""
        return self.kv_active or self.generator.has_dataset

    @property
    def kv_active(self) -> bool:
        """Whether requests use the prefix cache now (on, and not put to sleep)."""
        return self.kv is not None and self.kv_awake

    def _batched_plan(self) -> BatchedPlan:
        batched = self.plan.batched
        assert batched is not None  # the engine mode does not change at run time
        return batched

    def reserve(
        self, state: RequestState, prompts: list[Prompt], outputs: list[int]
    ) -> list[Ticket | BatchTicket]:
        """A slot or queue place for each choice (one prompt and its output token count per
        choice); none if any cannot be had (429), or if a prompt can never fit in the KV cache
        (400)."""
        blocks = self._prompt_blocks(state, prompts)
        tickets: list[Ticket | BatchTicket] = []
        batch = self.batch
        try:
            for resources, prompt, output in zip(blocks, prompts, outputs, strict=True):
                if batch is None:
                    tickets.append(self.scheduler.reserve(state.adapter, resources))
                else:
                    tickets.append(
                        batch.enqueue(
                            state.adapter,
                            resources,
                            prompt.tokens,
                            output,
                            state.remote_prefill,
                            state.stall_after_tokens,
                            state.stall,
                        )
                    )
        except LlmsimError:
            for ticket in tickets:
                ticket.give_back()
            raise
        return tickets

    def _prompt_blocks(
        self, state: RequestState, prompts: list[Prompt]
    ) -> list[PromptBlocks | None]:
        kv = self.kv
        if kv is None or not self.kv_awake or self.plan.kv is None:
            return [None] * len(prompts)
        model = state.display_model
        root = self._roots.get(model)
        if root is None:
            root = self._roots[model] = root_hash(self.plan.kv.hash_seed, model)
        chains: dict[int, tuple[list[int], tuple[int, ...]]] = {}
        out: list[PromptBlocks | None] = []
        for prompt in prompts:
            chain = chains.get(id(prompt))
            if chain is None:
                ids = prompt.token_ids or tuple(self.tokenizer.encode(prompt.text))
                chain = chains[id(prompt)] = (block_hashes(root, ids, kv.block_size), ids)
                if len(chain[0]) > kv.capacity:
                    raise BadRequest(
                        f"The prompt needs {len(chain[0])} KV-cache blocks; the cache holds "
                        f"{kv.capacity}."
                    )
            out.append(PromptBlocks(kv, model, chain[0], chain[1], state.adapter))
        return out

    def sleep(self) -> None:
        """Put the engine to sleep: the KV cache is dropped and bypassed (SLEEP-1)."""
        self.sleeping = True
        if self.kv is not None and self.kv_awake:
            self.kv.clear()
        self.kv_awake = False

    def wake_up(self, tags: list[str]) -> None:
        """Wake up; the KV cache comes back (empty) unless only other tags are named."""
        self.sleeping = False
        if not tags or "kv_cache" in tags:
            self.kv_awake = True

    def _is_loaded(self, model: str) -> bool:
        return model == self.plan.model.display_name or model in self.scheduler.loaded

    def running(self, state: RequestState, choice: Choice) -> RunningChoice:
        """An async context: wait for the choice's slot, then yield its token timeline; on
        exit free the slot and record the outcome (finished, or aborted when the client went
        away)."""
        return RunningChoice(self, state, choice)

    def _admit(self, state: RequestState, choice: Choice) -> TokenTimeline | StepTimeline:
        """The timeline of a choice admitted now (its cache hits read)."""
        plan = state.plan
        latency = state.latency or plan.latency
        rng = self.timing_rng(state, choice, latency)
        ticket = choice.ticket
        admitted = ticket.timeline.admitted if isinstance(ticket, BatchTicket) else self.clock()
        prompt_tokens = choice.prompt.tokens
        blocks = choice.ticket.resources
        threshold_hit = state.force_cache_threshold
        if isinstance(blocks, PromptBlocks):
            choice.cached_tokens = blocks.cached_tokens
            self.metrics.prefix_cache_queries_total += prompt_tokens
            self.metrics.prefix_cache_hits_total += blocks.cached_tokens
            threshold = state.cache_hit_threshold
            if threshold is not None and prompt_tokens:
                threshold_hit = threshold_hit or blocks.cached_tokens / prompt_tokens < threshold
        if threshold_hit:
            choice.generation = Generation([], FINISH_CACHE_THRESHOLD)
            if isinstance(ticket, BatchTicket):
                ticket.give_back()  # nothing for the engine loop to compute
            return TokenTimeline(admitted, 0.0, latency.inter_token_latency, rng, answers=False)
        if isinstance(ticket, BatchTicket):
            return ticket.timeline
        factor = load_factor(latency, self.scheduler.running, plan.max_num_seqs)
        delay = first_token_delay(
            latency, rng, prompt_tokens, choice.cached_tokens, state.remote_prefill, factor
        )
        dynamic = latency.time_factor_under_load != 1.0
        return TokenTimeline(
            admitted,
            delay,
            latency.inter_token_latency,
            rng,
            (lambda: load_factor(latency, self.scheduler.running, plan.max_num_seqs))
            if dynamic
            else None,
            self.metrics.inter_token_latency,
            state.stall_after_tokens,
            state.stall,
        )

    def _finished(
        self, state: RequestState, choice: Choice, timeline: TokenTimeline | StepTimeline
    ) -> None:
        """Record a choice that ended normally."""
        first = timeline.first_token
        now = self.clock()
        generation = choice.generation
        self.metrics.choice_finished(
            state.arrived_at,
            timeline.admitted,
            first,
            max(now, timeline.last) if first is not None else now,
            generation.count,
            choice.prompt.tokens,
            state.max_tokens,
            generation.finish_reason,
        )


ABORTS = (asyncio.CancelledError, ScriptedDisconnect)
"""How a choice ends when its client goes away (or a rule drops the connection)."""


class RunningChoice:
    """``async with engine.running(state, choice) as timeline``: one choice from its slot to
    its end (a plain class: cheaper per request than a generator-based context manager)."""

    __slots__ = ("_choice", "_engine", "_state", "_timeline")

    def __init__(self, engine: Engine, state: RequestState, choice: Choice):
        self._engine = engine
        self._state = state
        self._choice = choice
        self._timeline: TokenTimeline | StepTimeline | None = None

    async def __aenter__(self) -> TokenTimeline | StepTimeline:
        try:
            ticket = self._choice.ticket
            if not ticket.granted:
                await ticket.wait()
            self._timeline = self._engine._admit(self._state, self._choice)
        except BaseException as error:
            self._exit(isinstance(error, ABORTS))
            raise
        return self._timeline

    async def __aexit__(self, kind: type[BaseException] | None, error: object, tb: object) -> None:
        aborted = kind is not None and issubclass(
            kind, (asyncio.CancelledError, ScriptedDisconnect)
        )
        if kind is None and self._timeline is not None:
            self._engine._finished(self._state, self._choice, self._timeline)
        self._exit(aborted)

    def _exit(self, aborted: bool) -> None:
        if aborted:
            self._engine.metrics.choice_aborted()
        self._choice.ticket.give_back()
