import pytest

from llmsim.metrics.buckets import TTFT_BUCKETS, token_buckets
from llmsim.metrics.histogram import Histogram


def test_observations_land_in_le_buckets() -> None:
    histogram = Histogram((0.1, 0.5, 1.0))
    for value in (0.05, 0.1, 0.2, 0.5, 2.0):
        histogram.observe(value)
    assert histogram.cumulative() == [("0.1", 2.0), ("0.5", 4.0), ("1.0", 4.0), ("+Inf", 5.0)]
    assert histogram.sum == pytest.approx(2.85)
    assert histogram.count == 5


def test_token_buckets_follow_1_2_5_up_to_max_model_len_MET_4() -> None:
    assert token_buckets(1024) == (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
    assert token_buckets(5) == (1, 2, 5)


def test_loaded_counts_are_observed_at_the_bucket_bounds_FAKE_2() -> None:
    histogram = Histogram(TTFT_BUCKETS)
    histogram.load_counts([1, 2, 3])
    assert histogram.cumulative()[:3] == [("0.001", 1.0), ("0.005", 3.0), ("0.01", 6.0)]
    assert histogram.sum == pytest.approx(0.001 + 2 * 0.005 + 3 * 0.01)
    tokens = Histogram(token_buckets(1024))
    tokens.load_counts([10, 20, 30])
    assert tokens.sum == 10 * 1 + 20 * 2 + 30 * 5
    overflow = Histogram((1.0, 2.0))
    overflow.load_counts([0, 0, 4])
    assert overflow.sum == 4 * 3.0
