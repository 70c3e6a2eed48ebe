"""Ready-to-call latency samplers.

A sampler turns a random source into a duration in seconds. Each is a small frozen object built
once at plan time; sampling does no allocation beyond the float it returns. ``scale`` multiplies
the location of the distribution (upstream's load factor scales the mean, not the jitter).
``server.time-scale`` is different: it multiplies every sample (``time_scaled``).
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from typing import Protocol

from llmsim.scenario.distributions import (
    ConstantDistribution,
    EmpiricalDistribution,
    LognormalDistribution,
    NormalDistribution,
    UniformDistribution,
    percentile_points,
)

_Z99 = 2.3263478740408408
"""The standard normal quantile at 0.99."""

UPSTREAM_CLAMP = (0.3, 1.7)
"""Upstream clamps normal samples to [0.3, 1.7] x mean (LAT-5)."""


class Sampler(Protocol):
    """Draws one duration in seconds."""

    def sample(self, rng: random.Random, scale: float = 1.0) -> float:
        """A duration in seconds; ``scale`` multiplies the distribution's location."""
        ...

    def describe(self) -> str:
        """A short human-readable form, for ``llmsim plan``."""
        ...


@dataclass(frozen=True, slots=True)
class Constant:
    """Always ``value`` seconds."""

    value: float

    def sample(self, rng: random.Random, scale: float = 1.0) -> float:
        return self.value * scale

    def describe(self) -> str:
        return f"constant {_ms(self.value)}"


@dataclass(frozen=True, slots=True)
class UpstreamNormal:
    """Normal(mean, std_dev) clamped to [0.3, 1.7] x mean, as upstream samples."""

    mean: float
    std_dev: float

    def sample(self, rng: random.Random, scale: float = 1.0) -> float:
        mean = self.mean * scale
        if self.std_dev <= 0 or mean <= 0:
            return mean
        low, high = UPSTREAM_CLAMP
        return min(max(rng.gauss(mean, self.std_dev), low * mean), high * mean)

    def describe(self) -> str:
        return f"normal mean {_ms(self.mean)} std-dev {_ms(self.std_dev)} (clamped to ±70%)"


@dataclass(frozen=True, slots=True)
class Lognormal:
    """exp(Normal(mu, sigma)) seconds."""

    mu: float
    sigma: float

    @classmethod
    def from_median_p99(cls, median: float, p99: float) -> Lognormal:
        """The log-normal whose median and 99th percentile are given."""
        return cls(math.log(median), math.log(p99 / median) / _Z99)

    @classmethod
    def from_mean_std_dev(cls, mean: float, std_dev: float) -> Lognormal:
        """The log-normal whose mean and standard deviation are given."""
        sigma2 = math.log1p((std_dev / mean) ** 2)
        return cls(math.log(mean) - sigma2 / 2, math.sqrt(sigma2))

    def sample(self, rng: random.Random, scale: float = 1.0) -> float:
        return math.exp(rng.gauss(self.mu, self.sigma)) * scale

    def describe(self) -> str:
        median = math.exp(self.mu)
        p99 = math.exp(self.mu + _Z99 * self.sigma)
        return f"lognormal median {_ms(median)} p99 {_ms(p99)}"


@dataclass(frozen=True, slots=True)
class Uniform:
    """Uniform in [low, high] seconds."""

    low: float
    high: float

    def sample(self, rng: random.Random, scale: float = 1.0) -> float:
        return rng.uniform(self.low, self.high) * scale

    def describe(self) -> str:
        return f"uniform {_ms(self.low)} .. {_ms(self.high)}"


@dataclass(frozen=True, slots=True)
class Empirical:
    """The piecewise-linear inverse of an empirical CDF given by (probability, value) knots."""

    probabilities: tuple[float, ...]
    values: tuple[float, ...]

    @classmethod
    def from_samples(cls, samples: list[float]) -> Empirical:
        """Knots at the order statistics: the i-th of n sorted samples at probability i/(n-1)."""
        ordered = sorted(samples)
        if len(ordered) == 1:
            return cls((0.0, 1.0), (ordered[0], ordered[0]))
        last = len(ordered) - 1
        return cls(tuple(i / last for i in range(len(ordered))), tuple(ordered))

    @classmethod
    def from_percentiles(cls, percentiles: dict[str, float]) -> Empirical:
        """Knots at the given percentiles; below the first and above the last, values hold."""
        points = percentile_points(percentiles)
        return cls(tuple(p for p, _ in points), tuple(v for _, v in points))

    def sample(self, rng: random.Random, scale: float = 1.0) -> float:
        u = rng.random()
        probabilities, values = self.probabilities, self.values
        index = bisect.bisect_right(probabilities, u)
        if index == 0:
            return values[0] * scale
        if index >= len(values):
            return values[-1] * scale
        p0, p1 = probabilities[index - 1], probabilities[index]
        v0, v1 = values[index - 1], values[index]
        share = (u - p0) / (p1 - p0) if p1 > p0 else 0.0
        return (v0 + share * (v1 - v0)) * scale

    def describe(self) -> str:
        knots = ", ".join(
            f"p{p * 100:g} {_ms(v)}" for p, v in zip(self.probabilities, self.values, strict=True)
        )
        return f"empirical ({knots})"


@dataclass(frozen=True, slots=True)
class TimeScaled:
    """Another sampler's durations multiplied by ``factor`` (``server.time-scale``): the whole
    distribution is stretched or shrunk, its spread and clamping bounds included."""

    sampler: Sampler
    factor: float

    def sample(self, rng: random.Random, scale: float = 1.0) -> float:
        return self.sampler.sample(rng, scale) * self.factor

    def describe(self) -> str:
        return f"{self.sampler.describe()}, x{self.factor:g} (time-scale)"


def time_scaled(sampler: Sampler, factor: float) -> Sampler:
    """``sampler`` with every duration it draws multiplied by ``factor``: itself for 1, a
    ``Constant`` for a constant (so constant latencies stay recognisably constant), else a
    ``TimeScaled`` wrapper."""
    if factor == 1.0:
        return sampler
    if isinstance(sampler, Constant):
        return Constant(sampler.value * factor)
    return TimeScaled(sampler, factor)


def build_sampler(declared: object, std_dev: float = 0.0, time_scale: float = 1.0) -> Sampler:
    """The sampler for a latency key's value (a duration in seconds, or a distribution), its
    durations multiplied by ``time_scale``."""
    return time_scaled(_declared_sampler(declared, std_dev), time_scale)


def _declared_sampler(declared: object, std_dev: float) -> Sampler:
    if isinstance(declared, float | int):
        if std_dev > 0:
            return UpstreamNormal(float(declared), std_dev)
        return Constant(float(declared))
    if isinstance(declared, ConstantDistribution):
        return Constant(declared.value)
    if isinstance(declared, NormalDistribution):
        return UpstreamNormal(declared.mean, declared.std_dev)
    if isinstance(declared, LognormalDistribution):
        if declared.median is not None and declared.p99 is not None:
            return Lognormal.from_median_p99(declared.median, declared.p99)
        assert declared.mean is not None and declared.std_dev is not None
        return Lognormal.from_mean_std_dev(declared.mean, declared.std_dev)
    if isinstance(declared, UniformDistribution):
        return Uniform(declared.min, declared.max)
    if isinstance(declared, EmpiricalDistribution):
        if declared.samples is not None:
            return Empirical.from_samples(declared.samples)
        assert declared.percentiles is not None
        return Empirical.from_percentiles(declared.percentiles)
    raise TypeError(f"not a latency declaration: {declared!r}")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:g}ms"
