"""The batched engine on the event loop: one timer per step.

``BatchScheduler`` stands where the per-request ``Scheduler`` stands (the same running count,
queue limit, LoRA slots and ``retire``), but slots are granted by the engine loop: a request
joins the queue after its input overhead, is admitted when a step first schedules it, and its
tokens come out at the ends of steps. The loop runs only while there is work: the next step is
planned when one ends (from its planned end, so that timer lateness does not add up), or, when
the engine is idle, as soon as a request joins the queue.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from llmsim.engine.batch import BatchCore, BlockPool, Blocks, Sequence, Step
from llmsim.engine.scheduler import QUEUE_FULL_MESSAGE, LoraListener, Scheduler
from llmsim.engine.timeline import StepTimeline
from llmsim.errors import QueueFull
from llmsim.metrics.recorder import MetricsRecorder
from llmsim.plan.plan import BatchedPlan, StepTimeModel

LATE_RESTART = 0.005
"""A step that would start this much after the previous one's planned end starts now instead
(the event loop was blocked): the engine does not make up lost time with a burst of steps."""


class BatchTicket:
    """One choice's place in the batched engine (the per-request ``Ticket``'s counterpart)."""

    __slots__ = ("_scheduler", "adapter", "resources", "returned", "seq", "timeline")

    def __init__(
        self,
        scheduler: BatchScheduler,
        seq: Sequence,
        timeline: StepTimeline,
        resources: Blocks | None,
    ):
        self._scheduler = scheduler
        self.seq = seq
        self.timeline = timeline
        self.adapter = seq.adapter
        self.resources = resources
        self.returned = False

    @property
    def granted(self) -> bool:
        """Whether the engine has admitted the choice."""
        return self.timeline.started

    async def wait(self) -> None:
        """Return once the engine has admitted the choice."""
        await self.timeline.admission()

    def give_back(self) -> None:
        """Leave the engine, wherever the choice is; idempotent."""
        if not self.returned:
            self.returned = True
            self._scheduler.remove(self.seq)
            self.timeline.detach()  # the feed refers to the timeline: no cycle left


class BatchScheduler(Scheduler):
    """The engine loop of one rank, with the per-request scheduler's admission limits."""

    def __init__(
        self,
        max_running: int,
        max_waiting: int,
        max_loras: int,
        on_lora_change: LoraListener | None,
        plan: Callable[[], BatchedPlan],
        metrics: MetricsRecorder,
        rng: random.Random,
        pool: BlockPool | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ):
        super().__init__(max_running, max_waiting, max_loras, on_lora_change)
        self._plan = plan
        self._metrics = metrics
        self._clock = clock
        first = plan()
        self.core = BatchCore(
            max_running,
            first.max_num_batched_tokens,
            self._step_time,
            rng,
            pool,
            self._can_run,
            self._seq_started,
            self._seq_stopped,
        )
        self._arriving: set[Sequence] = set()
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._step: Step | None = None
        self._step_end = 0.0

    @property
    def waiting(self) -> int:
        """Requests waiting to be scheduled (preempted ones included)."""
        return len(self.core.waiting) + len(self._arriving)

    @property
    def preemptions(self) -> int:
        """Preemptions so far."""
        return self.core.preemptions

    def would_wait(self, adapter: str | None = None, resources: object = None) -> bool:
        """A batched request always queues until a step schedules it."""
        return True

    def enqueue(
        self,
        adapter: str | None,
        resources: Blocks | None,
        prompt_tokens: int,
        output_tokens: int,
        remote_prefill: bool,
        stall_after_tokens: int | None = None,
        stall: float = 0.0,
    ) -> BatchTicket:
        """Queue a choice (after its input overhead); ``QueueFull`` when the queue is full."""
        if self.waiting >= self.max_waiting:
            raise QueueFull(QUEUE_FULL_MESSAGE)
        plan = self._plan()
        overhead = plan.request_overhead
        timeline = StepTimeline(
            output_tokens,
            overhead.per_output_token,
            self._metrics.inter_token_latency,
            stall_after_tokens,
            stall,
        )
        seq = Sequence(prompt_tokens, output_tokens, timeline, resources, adapter, remote_prefill)
        delay = overhead.base + overhead.per_input_token * prompt_tokens
        self._arriving.add(seq)
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._arrive, seq)
        else:
            self._arrive(seq)
        return BatchTicket(self, seq, timeline, resources)

    def remove(self, seq: Sequence) -> None:
        """A choice leaves (its client went away, or it ended)."""
        if seq in self._arriving:
            self._arriving.discard(seq)
            return
        self.core.remove(seq)
        self._wake()

    def _arrive(self, seq: Sequence) -> None:
        if seq in self._arriving:
            self._arriving.discard(seq)
            self.core.add(seq)
            self._wake()

    def _dispatch(self) -> None:
        """Something was freed (a LoRA slot): the loop looks at the queue again."""
        self._wake()

    def _step_time(self) -> StepTimeModel:
        return self._plan().step_time

    def _seq_started(self, seq: Sequence) -> int | None:
        self.running += 1
        adapter = seq.adapter
        if adapter is None:
            return None
        slot = self._enter_adapter(adapter)
        self._lora_changed()
        return slot

    def _seq_stopped(self, seq: Sequence) -> None:
        self.running -= 1
        if seq.adapter is not None:
            self._leave_adapter(seq.adapter)
            self._lora_changed()

    def _wake(self) -> None:
        """Start a step now if the engine is idle."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_soon(self._next_step)

    def _next_step(self) -> None:
        """End the step in flight (its tokens leave) and start the next one, if any."""
        self._timer = None
        now = self._clock()
        start = now
        step = self._step
        if step is not None:
            self._step = None
            end = self._step_end
            self.core.end_step(step, end)
            self._metrics.iteration_tokens.observe(step.tokens)
            if now - end < LATE_RESTART:
                start = end
        step = self.core.plan_step(start)
        self._metrics.num_preemptions_total = self.core.preemptions
        if step is None:
            return
        self._step = step
        self._step_end = start + step.duration
        delay = self._step_end - self._clock()
        self._timer = asyncio.get_running_loop().call_later(max(delay, 0.0), self._next_step)
