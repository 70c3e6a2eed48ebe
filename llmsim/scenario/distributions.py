"""Latency distributions as a scenario declares them.

A latency key takes either a duration (a constant, to which upstream's ``-std-dev`` jitter can
apply) or one of these distributions, told apart by their ``distribution`` key. This module only
validates declarations; the plan turns them into samplers.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag, model_validator

from llmsim.scenario.base import Section
from llmsim.scenario.units import Duration

UPSTREAM_MAX_STD_DEV_SHARE = 0.3
"""Upstream rejects a std-dev above 30% of its mean (LAT-6)."""

_PERCENTILE_KEY = re.compile(r"^p(\d+(?:\.\d+)?)$")


class ConstantDistribution(Section):
    """Always the same value."""

    distribution: Literal["constant"]
    value: Duration


class NormalDistribution(Section):
    """Upstream's normal jitter: std-dev at most 30% of the mean, samples clamped to ±70%."""

    distribution: Literal["normal"]
    mean: Duration
    std_dev: Duration = 0.0

    @model_validator(mode="after")
    def _std_dev_within_upstream_bound(self) -> NormalDistribution:
        if self.std_dev > UPSTREAM_MAX_STD_DEV_SHARE * self.mean + 1e-12:
            raise ValueError("std-dev must be at most 30% of mean")
        return self


class LognormalDistribution(Section):
    """Log-normal, given by ``median`` and ``p99`` or by ``mean`` and ``std-dev``."""

    distribution: Literal["lognormal"]
    median: Duration | None = None
    p99: Duration | None = None
    mean: Duration | None = None
    std_dev: Duration | None = None

    @model_validator(mode="after")
    def _one_parameter_pair(self) -> LognormalDistribution:
        by_quantiles = self.median is not None or self.p99 is not None
        by_moments = self.mean is not None or self.std_dev is not None
        if by_quantiles == by_moments:
            raise ValueError("give either median and p99, or mean and std-dev")
        if by_quantiles:
            if self.median is None or self.p99 is None:
                raise ValueError("median and p99 go together")
            if self.median <= 0:
                raise ValueError("median must be above 0")
            if self.p99 < self.median:
                raise ValueError("p99 must not be below median")
        else:
            if self.mean is None or self.std_dev is None:
                raise ValueError("mean and std-dev go together")
            if self.mean <= 0:
                raise ValueError("mean must be above 0")
        return self


class UniformDistribution(Section):
    """Uniform between ``min`` and ``max``."""

    distribution: Literal["uniform"]
    min: Duration
    max: Duration

    @model_validator(mode="after")
    def _ordered(self) -> UniformDistribution:
        if self.max < self.min:
            raise ValueError("max must not be below min")
        return self


class EmpiricalDistribution(Section):
    """Measured values: ``samples`` or ``percentiles`` (``p50``, ``p90``, ``p99`` …).

    Either way sampling follows the piecewise-linear inverse of the empirical CDF.
    """

    distribution: Literal["empirical"]
    samples: list[Duration] | None = Field(default=None, min_length=1)
    percentiles: dict[str, Duration] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> EmpiricalDistribution:
        if (self.samples is None) == (self.percentiles is None):
            raise ValueError("give either samples or percentiles")
        if self.percentiles is not None:
            points = percentile_points(self.percentiles)
            values = [value for _, value in points]
            if values != sorted(values):
                raise ValueError("percentile values must not decrease as the percentile grows")
        return self


def percentile_points(percentiles: dict[str, float]) -> list[tuple[float, float]]:
    """``{"p50": a, "p99": b}`` as sorted ``[(0.50, a), (0.99, b)]``; raise on a bad key."""
    points = []
    for key, value in percentiles.items():
        match = _PERCENTILE_KEY.match(key)
        if match is None or float(match.group(1)) > 100:
            raise ValueError(f"percentile key {key!r} must look like p50, p99 or p99.9 (0-100)")
        points.append((float(match.group(1)) / 100.0, value))
    return sorted(points)


Distribution = Annotated[
    ConstantDistribution
    | NormalDistribution
    | LognormalDistribution
    | UniformDistribution
    | EmpiricalDistribution,
    Field(discriminator="distribution"),
]

DISTRIBUTION_TAGS = frozenset(
    {"duration", "by-distribution", "constant", "normal", "lognormal", "uniform", "empirical"}
)
"""Names pydantic puts in error locations for these unions; they are not scenario keys."""


def _latency_kind(value: Any) -> str:
    # A dict when validating; a distribution object when serializing.
    return "by-distribution" if isinstance(value, dict | BaseModel) else "duration"


LatencyValue = Annotated[
    Annotated[Duration, Tag("duration")] | Annotated[Distribution, Tag("by-distribution")],
    Discriminator(_latency_kind),
]
"""A latency key's value: a duration or a distribution."""
