"""Running slots and the FIFO waiting queue of one engine (upstream's per-request mode).

At most ``max_running`` requests run; others wait in arrival order, at most ``max_waiting`` of
them (SCHED-1, SCHED-3). A freed slot is handed straight to the first waiter, so no newcomer can
overtake the queue. A waiter that is cancelled (its client went away) leaves the queue at once;
one cancelled just after being handed a slot passes the slot on. Nothing here sleeps or knows
about time.
"""

from __future__ import annotations

import asyncio
from collections import deque

from llmsim.errors import QueueFull

QUEUE_FULL_MESSAGE = "Failed to enqueue request, waiting requests queue is full"


class Scheduler:
    """Admission control: ``acquire`` a running slot, ``release`` it when the request ends."""

    def __init__(self, max_running: int, max_waiting: int):
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.running = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a slot at once if one is free and nobody waits; never blocks."""
        if self.running < self.max_running and not self._waiters:
            self.running += 1
            return True
        return False

    async def acquire(self) -> None:
        """Take a running slot, waiting in FIFO order; ``QueueFull`` when the queue is full."""
        if self.try_acquire():
            return
        if len(self._waiters) >= self.max_waiting:
            raise QueueFull(QUEUE_FULL_MESSAGE)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give the slot back: to the first live waiter, else to the pool."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.running -= 1
