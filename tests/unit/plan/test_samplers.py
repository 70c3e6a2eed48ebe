import random
import statistics

import pytest

from llmsim.plan.samplers import (
    Constant,
    Empirical,
    Lognormal,
    Uniform,
    UpstreamNormal,
    build_sampler,
)
from llmsim.scenario.distributions import (
    EmpiricalDistribution,
    LognormalDistribution,
    NormalDistribution,
    UniformDistribution,
)

N = 20_000


def draws(sampler: object, n: int = N, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [sampler.sample(rng) for _ in range(n)]  # type: ignore[attr-defined]


def test_duration_without_std_dev_is_constant() -> None:
    sampler = build_sampler(0.2)
    assert isinstance(sampler, Constant)
    assert set(draws(sampler, 10)) == {0.2}


def test_duration_with_std_dev_is_upstream_normal_clamped_to_70_percent() -> None:
    sampler = build_sampler(0.1, 0.03)
    assert isinstance(sampler, UpstreamNormal)
    values = draws(sampler)
    assert min(values) >= 0.03 - 1e-12
    assert max(values) <= 0.17 + 1e-12
    assert statistics.fmean(values) == pytest.approx(0.1, rel=0.02)
    assert statistics.stdev(values) == pytest.approx(0.03, rel=0.05)


def test_clamp_bounds_are_reached_with_a_wide_spread() -> None:
    values = draws(UpstreamNormal(1.0, 1.0))
    assert min(values) == pytest.approx(0.3)
    assert max(values) == pytest.approx(1.7)


def test_lognormal_by_median_and_p99() -> None:
    declared = LognormalDistribution(distribution="lognormal", median="12ms", p99="40ms")
    values = sorted(draws(build_sampler(declared)))
    assert values[N // 2] == pytest.approx(0.012, rel=0.03)
    assert values[int(N * 0.99)] == pytest.approx(0.040, rel=0.08)


def test_lognormal_by_mean_and_std_dev() -> None:
    declared = LognormalDistribution(distribution="lognormal", mean="50ms", std_dev="20ms")
    values = draws(build_sampler(declared), n=50_000)
    assert statistics.fmean(values) == pytest.approx(0.05, rel=0.02)
    assert statistics.stdev(values) == pytest.approx(0.02, rel=0.06)


def test_uniform_stays_within_its_bounds() -> None:
    sampler = build_sampler(UniformDistribution(distribution="uniform", min="10ms", max="30ms"))
    assert isinstance(sampler, Uniform)
    values = draws(sampler)
    assert min(values) >= 0.01 and max(values) <= 0.03
    assert statistics.fmean(values) == pytest.approx(0.02, rel=0.02)


def test_empirical_percentiles_are_honoured() -> None:
    declared = EmpiricalDistribution(
        distribution="empirical",
        percentiles={"p0": "10ms", "p50": "20ms", "p90": "50ms", "p99": "200ms"},
    )
    values = draws(build_sampler(declared))
    for bound, share in ((0.02, 0.5), (0.05, 0.9), (0.2 - 1e-9, 0.99)):
        below = sum(v <= bound for v in values) / N
        assert below == pytest.approx(share, abs=0.01)
    # Above the highest percentile given, values hold at it: no extrapolation.
    assert max(values) == pytest.approx(0.2)


def test_empirical_samples_interpolate_between_order_statistics() -> None:
    sampler = Empirical.from_samples([0.3, 0.1, 0.2])
    values = draws(sampler)
    assert min(values) >= 0.1 and max(values) <= 0.3
    assert statistics.median(values) == pytest.approx(0.2, rel=0.03)
    assert set(draws(Empirical.from_samples([0.5]), 5)) == {0.5}


def test_scale_multiplies_the_location() -> None:
    assert Constant(0.1).sample(random.Random(0), 2.0) == pytest.approx(0.2)
    normal = draws(UpstreamNormal(0.1, 0.0), 3)
    assert normal == [0.1, 0.1, 0.1]
    scaled = Lognormal.from_median_p99(0.01, 0.02).sample(random.Random(5), 3.0)
    assert scaled == pytest.approx(
        3 * Lognormal.from_median_p99(0.01, 0.02).sample(random.Random(5))
    )


def test_same_seed_same_draws() -> None:
    sampler = build_sampler(NormalDistribution(distribution="normal", mean="100ms", std_dev="20ms"))
    assert draws(sampler, 100, seed=7) == draws(sampler, 100, seed=7)


def test_every_sampler_describes_itself() -> None:
    for sampler in (
        Constant(0.2),
        UpstreamNormal(0.1, 0.01),
        Lognormal.from_median_p99(0.01, 0.03),
        Uniform(0.0, 0.1),
        Empirical.from_samples([0.1, 0.2]),
    ):
        assert "ms" in sampler.describe()
