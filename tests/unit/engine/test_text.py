import random
from collections import Counter

import pytest

from llmsim.engine.text import SENTENCES, TextSource, histogram_length, response_length
from llmsim.engine.tokenizer import SimulatedTokenizer


def lengths(limit: int, n: int = 20_000) -> Counter[int]:
    rng = random.Random(3)
    return Counter(histogram_length(rng, limit) for _ in range(n))


def test_histogram_for_60_uses_upstream_buckets_GEN_3() -> None:
    seen = lengths(60)
    assert set(seen) == set(range(1, 61))
    n = sum(seen.values())
    buckets = [(1, 11, 0.2), (12, 23, 0.3), (24, 35, 0.2), (36, 47, 0.05), (48, 59, 0.1)]
    for low, high, share in buckets:
        got = sum(seen[i] for i in range(low, high + 1)) / n
        assert got == pytest.approx(share, abs=0.015), (low, high)
    assert seen[60] / n == pytest.approx(0.15, abs=0.015)


def test_histogram_for_200_uses_upstream_buckets_GEN_3() -> None:
    seen = lengths(200)
    n = sum(seen.values())
    buckets = [(1, 20, 0.2), (21, 40, 0.3), (41, 60, 0.2), (61, 180, 0.05), (181, 199, 0.1)]
    for low, high, share in buckets:
        got = sum(seen[i] for i in range(low, high + 1)) / n
        assert got == pytest.approx(share, abs=0.015), (low, high)
    assert seen[200] / n == pytest.approx(0.15, abs=0.015)
    assert max(seen) == 200


def test_histogram_small_limits_GEN_3() -> None:
    assert set(lengths(1, 100)) == {1}
    assert set(lengths(6, 2000)) == set(range(1, 7))


def test_ignore_eos_gives_exactly_the_limit_GEN_2() -> None:
    rng = random.Random(0)
    assert response_length(rng, 37, 500, ignore_eos=True) == 37


def test_without_max_tokens_small_room_is_uniform_GEN_2() -> None:
    rng = random.Random(0)
    seen = {response_length(rng, None, 10, ignore_eos=False) for _ in range(2000)}
    assert seen == set(range(1, 11))


def test_without_max_tokens_lengths_centre_on_40_GEN_2() -> None:
    rng = random.Random(0)
    seen = [response_length(rng, None, 1000, ignore_eos=False) for _ in range(5000)]
    assert min(seen) >= 1
    assert sum(seen) / len(seen) == pytest.approx(41, abs=2)


def test_text_is_cut_at_a_token_boundary_and_deterministic() -> None:
    tokenizer = SimulatedTokenizer()
    source = TextSource(tokenizer)
    tokens = source.tokens(random.Random(9), 23)
    assert len(tokens) == 23
    assert tokenizer.split("".join(tokens)) == tokens
    assert source.tokens(random.Random(9), 23) == tokens


def test_sentences_end_with_a_space_so_they_join_at_token_boundaries() -> None:
    assert all(sentence.endswith(" ") for sentence in SENTENCES)
