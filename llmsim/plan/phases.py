"""Which phases are active: time since the server became ready, and generation requests seen.

A phase with ``start`` begins that long after ready; one with ``after-requests: N`` begins with
the (N+1)-th generation request. It ends after its ``duration``, or, without one, when the next
phase (in the scenario's order) begins. Several may be active at once; later ones win where their
overlays overlap. Pure bookkeeping on an injectable clock: nothing here sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from llmsim.scenario.scripting import Phase


@dataclass(frozen=True, slots=True)
class PhaseWindow:
    """When one phase begins and how long it lasts."""

    name: str
    start: float | None
    after_requests: int | None
    duration: float | None


def windows(phases: list[Phase]) -> tuple[PhaseWindow, ...]:
    """The windows of a scenario's phases."""
    return tuple(PhaseWindow(p.name, p.start, p.after_requests, p.duration) for p in phases)


class PhaseClock:
    """Tracks the active phases of one rank."""

    def __init__(
        self, phases: tuple[PhaseWindow, ...], clock: Callable[[], float] = time.monotonic
    ):
        self.phases = phases
        self._clock = clock
        self._ready = clock()
        self._requests = 0
        self._began: list[float | None] = [None] * len(phases)

    def mark_ready(self) -> None:
        """The server is ready: time-based phases count from now."""
        self._ready = self._clock()

    def count_request(self) -> None:
        """A generation request arrived; phases waiting for it begin now."""
        self._requests += 1
        if not self.phases:
            return
        now = self._clock()
        for index, phase in enumerate(self.phases):
            if phase.after_requests is not None and self._requests == phase.after_requests + 1:
                self._began[index] = now

    def active(self) -> tuple[int, ...]:
        """Indices of the phases active now, in scenario order."""
        now = self._clock()
        began = [self._began_at(index, now) for index in range(len(self.phases))]
        active = []
        for index, phase in enumerate(self.phases):
            start = began[index]
            if start is None:
                continue
            if phase.duration is not None:
                if now >= start + phase.duration:
                    continue
            elif index + 1 < len(self.phases) and began[index + 1] is not None:
                continue
            active.append(index)
        return tuple(active)

    def active_name(self) -> str | None:
        """The name of the latest active phase (the one that wins), or None."""
        active = self.active()
        return self.phases[active[-1]].name if active else None

    def _began_at(self, index: int, now: float) -> float | None:
        phase = self.phases[index]
        if phase.start is not None:
            begins = self._ready + phase.start
            return begins if now >= begins else None
        return self._began[index]
