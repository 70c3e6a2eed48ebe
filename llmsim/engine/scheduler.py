"""Running slots and the FIFO waiting queue of one engine (upstream's per-request mode).

At most ``max_running`` requests run; others wait in arrival order, at most ``max_waiting`` of
them (SCHED-1, SCHED-3). ``reserve`` is synchronous: it grants a slot at once, or places the
request in the queue, or raises ``QueueFull`` — so a request made of several choices is placed
(or rejected) whole before any of it starts. A freed slot is handed straight to the first
waiter, so no newcomer overtakes the queue. A ticket given back while waiting leaves the queue at
once; one given back after being granted frees its slot. Nothing here sleeps or knows the time.
"""

from __future__ import annotations

import asyncio
from collections import deque

from llmsim.errors import QueueFull

QUEUE_FULL_MESSAGE = "Failed to enqueue request, waiting requests queue is full"

_WAITING, _GRANTED, _RETURNED = 0, 1, 2


class Ticket:
    """One request's claim on a running slot: granted, waiting, or given back."""

    __slots__ = ("_future", "_scheduler", "_state")

    def __init__(self, scheduler: Scheduler, granted: bool):
        self._scheduler = scheduler
        self._state = _GRANTED if granted else _WAITING
        self._future: asyncio.Future[None] | None = None

    @property
    def granted(self) -> bool:
        """Whether the ticket holds a running slot."""
        return self._state == _GRANTED

    async def wait(self) -> None:
        """Return once the ticket holds a running slot."""
        if self._state == _WAITING:
            if self._future is None:
                self._future = asyncio.get_running_loop().create_future()
            await self._future

    def give_back(self) -> None:
        """Free the slot, or leave the queue; idempotent."""
        if self._state == _GRANTED:
            self._state = _RETURNED
            self._scheduler.release()
        elif self._state == _WAITING:
            self._state = _RETURNED
            self._scheduler.withdraw(self)

    def _grant(self) -> None:
        self._state = _GRANTED
        if self._future is not None and not self._future.done():
            self._future.set_result(None)


class Scheduler:
    """Admission control for one engine's running slots."""

    def __init__(self, max_running: int, max_waiting: int):
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.running = 0
        self._queue: deque[Ticket] = deque()

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return len(self._queue)

    def would_wait(self) -> bool:
        """Whether a request arriving now would wait (or be rejected)."""
        return self.running >= self.max_running or bool(self._queue)

    def reserve(self) -> Ticket:
        """A slot now, or a place in the queue; ``QueueFull`` when the queue is full."""
        if not self.would_wait():
            self.running += 1
            return Ticket(self, granted=True)
        if len(self._queue) >= self.max_waiting:
            raise QueueFull(QUEUE_FULL_MESSAGE)
        ticket = Ticket(self, granted=False)
        self._queue.append(ticket)
        return ticket

    def release(self) -> None:
        """A running request ended: its slot goes to the first waiter, else back to the pool."""
        if self._queue:
            self._queue.popleft()._grant()
        else:
            self.running -= 1

    def withdraw(self, ticket: Ticket) -> None:
        """A waiting request left before it got a slot."""
        self._queue.remove(ticket)
