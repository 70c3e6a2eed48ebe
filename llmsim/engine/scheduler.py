"""Running slots, LoRA slots and the waiting queue of one engine (upstream's per-request mode).

At most ``max_running`` requests run (SCHED-1) and at most ``max_loras`` adapters are loaded at
once (LORA-4). A request may start when a running slot is free and its adapter is loaded, or can
be loaded into a free LoRA slot, or can replace a loaded adapter that nothing is running on (the
least recently used such one). Otherwise it waits, at most ``max_waiting`` requests (SCHED-3).

A request may also need resources besides its slot (its KV-cache blocks): it starts only when
they fit, they are taken in the same step that grants the slot, and the queue's head waits for
them rather than being overtaken (as vLLM's scheduler does).

``reserve`` is synchronous: it grants a slot at once, or queues, or raises ``QueueFull`` — so a
request made of several choices is placed (or rejected) whole before any of it starts. When a
slot frees, the first waiter whose adapter is loaded (the base model always is) gets it, else the
first whose adapter can be loaded now (SCHED-2). A ticket given back while waiting leaves the
queue at once; one given back after being granted frees its slot. Nothing here sleeps.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from llmsim.errors import QueueFull

QUEUE_FULL_MESSAGE = "Failed to enqueue request, waiting requests queue is full"

_WAITING, _GRANTED, _RETURNED = 0, 1, 2

LoraListener = Callable[[tuple[str, ...], tuple[str, ...]], None]
"""Told the adapters with running and with waiting requests after every change involving one."""


class Resources(Protocol):
    """What a request holds while it runs besides its slot (its KV-cache blocks)."""

    def fits(self) -> bool:
        """Whether the resources can be had now."""
        ...

    def acquire(self, lora_slot: int | None) -> None:
        """Take them, as the request starts (``lora_slot``: its adapter's 1-based slot)."""
        ...

    def release(self) -> None:
        """Give them back, as the request ends."""
        ...


@dataclass(slots=True)
class LoadedAdapter:
    """An adapter in a LoRA slot: its 1-based slot index and how many requests run on it."""

    slot: int
    running: int = 0
    last_used: int = 0


class Ticket:
    """One request's claim on a running slot: granted, waiting, or given back."""

    __slots__ = ("_future", "_scheduler", "_state", "adapter", "resources")

    def __init__(
        self,
        scheduler: Scheduler,
        adapter: str | None,
        granted: bool,
        resources: Resources | None = None,
    ):
        self._scheduler = scheduler
        self.adapter = adapter
        self.resources = resources
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
            self._scheduler.release(self)
        elif self._state == _WAITING:
            self._state = _RETURNED
            self._scheduler.withdraw(self)

    def _grant(self) -> None:
        self._state = _GRANTED
        if self._future is not None and not self._future.done():
            self._future.set_result(None)


class Scheduler:
    """Admission control for one engine's running slots and LoRA slots."""

    def __init__(
        self,
        max_running: int,
        max_waiting: int,
        max_loras: int = 1,
        on_lora_change: LoraListener | None = None,
    ):
        self.max_running = max_running
        self.max_waiting = max_waiting
        self.max_loras = max_loras
        self.running = 0
        self.loaded: dict[str, LoadedAdapter] = {}
        self._queue: deque[Ticket] = deque()
        self._waiting_adapters: Counter[str] = Counter()
        self._uses = 0
        self._retired: set[str] = set()
        self._on_lora_change = on_lora_change

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot."""
        return len(self._queue)

    def would_wait(self, adapter: str | None = None, resources: Resources | None = None) -> bool:
        """Whether a request arriving now would wait (or be rejected)."""
        return (
            self.running >= self.max_running
            or not self._can_run(adapter)
            or (resources is not None and not resources.fits())
        )

    def reserve(self, adapter: str | None = None, resources: Resources | None = None) -> Ticket:
        """A slot now, or a place in the queue; ``QueueFull`` when the queue is full."""
        if not self.would_wait(adapter, resources):
            ticket = Ticket(self, adapter, True, resources)
            self._start(ticket)
            return ticket
        if len(self._queue) >= self.max_waiting:
            raise QueueFull(QUEUE_FULL_MESSAGE)
        ticket = Ticket(self, adapter, False, resources)
        self._queue.append(ticket)
        if adapter is not None:
            self._waiting_adapters[adapter] += 1
            self._lora_changed()
        return ticket

    def release(self, ticket: Ticket) -> None:
        """A running request ended: free its slot and start whoever can run now."""
        self.running -= 1
        if ticket.resources is not None:
            ticket.resources.release()
        adapter = ticket.adapter
        if adapter is not None:
            self._leave_adapter(adapter)
        self._dispatch()
        if adapter is not None:
            self._lora_changed()

    def _leave_adapter(self, adapter: str) -> None:
        """One request fewer runs on ``adapter``; a retired adapter leaves with its last."""
        loaded = self.loaded[adapter]
        loaded.running -= 1
        if loaded.running == 0 and adapter in self._retired:
            self._retired.discard(adapter)
            del self.loaded[adapter]

    def withdraw(self, ticket: Ticket) -> None:
        """A waiting request left before it got a slot."""
        self._queue.remove(ticket)
        if ticket.adapter is not None:
            self._waiting_adapters[ticket.adapter] -= 1
            self._lora_changed()

    def retire(self, adapter: str) -> None:
        """The adapter was unloaded by the API: free its LoRA slot once nothing runs on it."""
        loaded = self.loaded.get(adapter)
        if loaded is None:
            return
        if loaded.running == 0:
            del self.loaded[adapter]
            self._dispatch()
        else:
            self._retired.add(adapter)

    def _can_run(self, adapter: str | None) -> bool:
        if adapter is None or adapter in self.loaded or len(self.loaded) < self.max_loras:
            return True
        return any(loaded.running == 0 for loaded in self.loaded.values())

    def _start(self, ticket: Ticket) -> None:
        self.running += 1
        adapter = ticket.adapter
        slot = None if adapter is None else self._enter_adapter(adapter)
        if ticket.resources is not None:
            ticket.resources.acquire(slot)
        if adapter is not None:
            self._lora_changed()

    def _enter_adapter(self, adapter: str) -> int:
        """One request more runs on ``adapter``, loaded first if need be; its LoRA slot."""
        loaded = self.loaded.get(adapter)
        if loaded is None:
            loaded = self.loaded[adapter] = LoadedAdapter(self._free_lora_slot())
        loaded.running += 1
        self._uses += 1
        loaded.last_used = self._uses
        return loaded.slot

    def _free_lora_slot(self) -> int:
        """A free 1-based LoRA slot index, evicting the least recently used idle adapter."""
        if len(self.loaded) >= self.max_loras:
            idle = [(a.last_used, name) for name, a in self.loaded.items() if a.running == 0]
            del self.loaded[min(idle)[1]]
        used = {loaded.slot for loaded in self.loaded.values()}
        return next(slot for slot in range(1, self.max_loras + 2) if slot not in used)

    def _dispatch(self) -> None:
        """Start waiters while slots allow, in SCHED-2's order."""
        while self._queue and self.running < self.max_running:
            ticket = self._next_runnable()
            if ticket is None or (ticket.resources is not None and not ticket.resources.fits()):
                return
            self._queue.remove(ticket)
            if ticket.adapter is not None:
                self._waiting_adapters[ticket.adapter] -= 1
            self._start(ticket)
            ticket._grant()

    def _next_runnable(self) -> Ticket | None:
        first = self._queue[0]
        if first.adapter is None or first.adapter in self.loaded:
            return first
        loadable: Ticket | None = None
        for ticket in self._queue:
            if ticket.adapter is None or ticket.adapter in self.loaded:
                return ticket
            if loadable is None and self._can_run(ticket.adapter):
                loadable = ticket
        return loadable

    def _lora_changed(self) -> None:
        if self._on_lora_change is None:
            return
        running = tuple(sorted(name for name, a in self.loaded.items() if a.running > 0))
        waiting = tuple(sorted(name for name, count in self._waiting_adapters.items() if count))
        self._on_lora_change(running, waiting)
