import itertools
import random

import pytest

from llmsim.engine.timeline import TokenTimeline
from llmsim.plan.samplers import Constant, UpstreamNormal


def test_first_token_at_admission_plus_ttft_then_itl_steps_LAT_1() -> None:
    timeline = TokenTimeline(100.0, 0.2, Constant(0.02), random.Random(0))
    deadlines = [timeline.next_deadline() for _ in range(4)]
    assert deadlines == pytest.approx([100.2, 100.22, 100.24, 100.26])
    assert not timeline.load_sensitive


def test_last_deadline_is_ttft_plus_n_minus_one_itl_LAT_7() -> None:
    timeline = TokenTimeline(5.0, 0.2, Constant(0.02), random.Random(0))
    assert timeline.last_deadline(10) == pytest.approx(5.0 + 0.2 + 9 * 0.02)


def test_load_factor_is_read_at_each_token_LAT_3() -> None:
    factors = iter([1.0, 2.0, 3.0])
    timeline = TokenTimeline(0.0, 0.1, Constant(0.01), random.Random(0), lambda: next(factors))
    assert timeline.load_sensitive
    deadlines = [timeline.next_deadline() for _ in range(4)]
    assert deadlines == pytest.approx([0.1, 0.11, 0.13, 0.16])


def test_deadlines_chain_from_deadlines_and_are_seeded() -> None:
    itl = UpstreamNormal(0.02, 0.005)
    first = TokenTimeline(0.0, 0.2, itl, random.Random(42))
    again = TokenTimeline(0.0, 0.2, itl, random.Random(42))
    a = [first.next_deadline() for _ in range(50)]
    assert a == [again.next_deadline() for _ in range(50)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(a)]
    assert all(0.006 - 1e-12 <= gap <= 0.034 + 1e-12 for gap in gaps)
