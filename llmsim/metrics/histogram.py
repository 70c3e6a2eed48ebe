"""A lock-free histogram for one event loop: bucket counts in a list, found by bisection."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence


class Histogram:
    """Counts observations per bucket (``le`` bounds, +Inf implied) and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Record one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def observe_many(self, value: float, times: int) -> None:
        """Record ``times`` observations of the same ``value``."""
        self.counts[bisect_left(self.bounds, value)] += times
        self.sum += value * times

    def cumulative(self) -> list[tuple[str, float]]:
        """Prometheus buckets: ``(le, cumulative count)`` pairs, ending with ``+Inf``."""
        out: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), float(total)))
        return out

    @property
    def count(self) -> int:
        """The number of observations."""
        return sum(self.counts)

    def reset(self) -> None:
        """Forget every observation."""
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def load_counts(self, counts: Iterable[int]) -> None:
        """Replace the content by ``counts[i]`` observations at bound i (FAKE-2): the +Inf
        bucket's observations count at the last bound + 1."""
        self.reset()
        points = (*self.bounds, self.bounds[-1] + 1)
        for index, count in enumerate(counts):
            self.counts[index] = count
            self.sum += count * points[index]
