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

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Protocol

from llmsim.metrics.histogram import Histogram
from llmsim.plan.samplers import Constant, Sampler

DUE_EARLY = 0.0005
"""How early a due frame or token may go out: half the timer resolution (uvloop rounds delays
to whole milliseconds, so a lone sleep is just as early or late)."""

Held = asyncio.Future[tuple[int, bytes]]
"""What a pacer gives back: the held last frame (or the cut) and its position."""
Send = Callable[[Any], Awaitable[None]]
"""An ASGI ``send``."""


class Waiter(Protocol):
    """The request's connection, as a timeline waits on it."""

    async def sleep_until(self, deadline: float) -> None:
        """Return at ``deadline`` (engine clock)."""
        ...

    def watch(self) -> None:
        """Listen for the client going away while the request waits."""
        ...


class Listener(Protocol):
    """Told whenever a batched choice emits a token."""

    def pump(self) -> None:
        """Write what can be written now."""
        ...


class Pacer(Protocol):
    """Writes a stream's frames 1 onwards: on deadlines, or as a batched engine emits."""

    def pace(
        self,
        send: Send,
        frames: Iterator[bytes],
        next_deadline: Callable[[], float],
        last: int,
        stop: int,
    ) -> Held:
        """Write each frame at the deadline ``next_deadline`` draws for it."""
        ...

    def feed(
        self, send: Send, frames: Iterator[bytes], timeline: StepTimeline, last: int, stop: int
    ) -> Held:
        """Write each frame once ``timeline`` has emitted its token."""
        ...


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

    async def until_first(self, conn: Waiter) -> None:
        """Return when the first token is due."""
        await conn.sleep_until(self.next_deadline())

    async def until_tokens(self, conn: Waiter, count: int) -> None:
        """Return when the last of ``count`` tokens is due."""
        if self.load_sensitive:
            for _ in range(count):
                await conn.sleep_until(self.next_deadline())
        else:
            await conn.sleep_until(self.last_deadline(count))

    def pace(self, pacer: Pacer, send: Send, frames: Iterator[bytes], last: int, stop: int) -> Held:
        """Write frames 1 onwards on their deadlines (see ``TokenPacer.pace``)."""
        return pacer.pace(send, frames, self.next_deadline, last, stop)


class StepTimeline:
    """A batched choice's tokens as the engine loop emits them: when it was admitted, how many
    the client may have, when the first and latest of those became visible, and who waits.

    A token emitted at the end of a step is visible at once, unless something stands between
    the engine and the client:
    - the output overhead (``per_output_token``, BLIS's alpha2): token k (from 0) is visible
      (k + 1) x per_output_token after its emission, as BLIS adds it to the TTFT and to every
      inter-token gap;
    - a scripted stall: once ``stall_after_tokens`` tokens are visible, the next ones are held
      for ``stall`` seconds and then leave together (as a network stall delivers them); the
      engine goes on generating meanwhile.
    """

    __slots__ = (
        "_admission",
        "_done",
        "_due",
        "_first",
        "_itl",
        "_listener",
        "_per_token",
        "_stall",
        "_stall_after",
        "_stall_ends",
        "_timer",
        "admitted",
        "emitted",
        "first",
        "last",
        "total",
        "visible",
    )

    def __init__(
        self,
        total: int,
        per_output_token: float,
        itl_histogram: Histogram | None,
        stall_after_tokens: int | None = None,
        stall: float = 0.0,
    ):
        self.total = max(total, 1)
        self._per_token = per_output_token
        self._itl = itl_histogram
        self._stall_after = stall_after_tokens if stall > 0 else None
        self._stall = stall
        self._stall_ends = 0.0
        self.admitted = 0.0
        """When the engine first scheduled the choice (0 before)."""
        self.first: float | None = None
        """When the first token became visible."""
        self.last = 0.0
        """When the latest visible token became visible."""
        self.emitted = 0
        self.visible = 0
        """Tokens the client may have."""
        self._due: deque[float] = deque()
        """When each emitted token not yet visible becomes visible."""
        self._timer: asyncio.TimerHandle | None = None
        self._admission: asyncio.Future[None] | None = None
        self._first: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._listener: Listener | None = None

    @property
    def first_token(self) -> float | None:
        """When the first token became visible (None before)."""
        return self.first

    @property
    def started(self) -> bool:
        """Whether the engine has admitted the choice."""
        return self.admitted > 0.0

    def start(self, now: float) -> None:
        """The engine scheduled the choice (the first time is its admission)."""
        if not self.started:
            self.admitted = now
            _wake(self._admission)
            if self._stall_after == 0:
                self._stall_ends = now + self._stall

    def token(self, now: float) -> None:
        """The engine emitted the next token at ``now`` (the end of its step)."""
        self.emitted += 1
        at = now + self.emitted * self._per_token
        if self._stall_after is not None and self.emitted > self._stall_after:
            at = max(at, self._stall_ends)
        if self._due or at > now:
            self._due.append(at)
            if self._timer is None:
                self._arm()
        else:
            self._show(1, at)
        if self.emitted == self._stall_after:
            self._stall_ends = at + self._stall

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._due[0] - time.perf_counter()
        self._timer = loop.call_at(loop.time() + max(delay, 0.0), self._release)

    def _release(self) -> None:
        """Make the tokens due by now visible."""
        self._timer = None
        due = self._due
        now = time.perf_counter() + DUE_EARLY
        count = 0
        at = 0.0
        while due and due[0] <= now:
            at = due.popleft()
            count += 1
        if count:
            self._show(count, at)
        if due:
            self._arm()

    def _show(self, count: int, at: float) -> None:
        """``count`` more tokens are visible, the latest at ``at``."""
        self.visible += count
        if self.first is None:
            self.first = at
            _wake(self._first)
        elif self._itl is not None:
            self._itl.observe(at - self.last)
        self.last = at
        if self._listener is not None:
            self._listener.pump()
        if self.visible >= self.total:
            _wake(self._done)

    def detach(self) -> None:
        """The choice is over: no one listens and nothing more is released."""
        self._listener = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def admission(self) -> None:
        """Return once the engine has admitted the choice."""
        if not self.started:
            self._admission = asyncio.get_running_loop().create_future()
            await self._admission

    async def until_first(self, conn: Waiter) -> None:
        """Return once the first token is visible."""
        if self.visible == 0:
            conn.watch()
            self._first = asyncio.get_running_loop().create_future()
            await self._first

    async def until_tokens(self, conn: Waiter, count: int) -> None:
        """Return once every token is visible."""
        if self.visible < self.total:
            conn.watch()
            self._done = asyncio.get_running_loop().create_future()
            await self._done

    def listen(self, listener: Listener) -> None:
        """Have ``listener.pump()`` called whenever tokens become visible."""
        self._listener = listener

    def pace(self, pacer: Pacer, send: Send, frames: Iterator[bytes], last: int, stop: int) -> Held:
        """Write frames 1 onwards as their tokens become visible (``TokenPacer.feed``)."""
        return pacer.feed(send, frames, self, last, stop)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
