import pytest

from llmsim.calibration.replay import (
    FIRST_ID,
    ID_RANGE,
    Measurement,
    ReplayReport,
    base_url,
    prompt_ids,
)


def test_prompts_have_the_recorded_length_and_ids_any_vocabulary_has() -> None:
    for length in (0, 1, 2, 7, 3500):
        ids = prompt_ids(12, length)
        assert len(ids) == length
        assert all(FIRST_ID <= i < FIRST_ID + ID_RANGE for i in ids)


def test_no_two_prompts_share_a_first_token() -> None:
    firsts = {tuple(prompt_ids(index, 2)) for index in range(3 * ID_RANGE)}
    assert len(firsts) == 3 * ID_RANGE
    assert len({prompt_ids(index, 1)[0] for index in range(ID_RANGE)}) == ID_RANGE


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:8000", "http://h:8000"),
        ("http://h:8000/", "http://h:8000"),
        ("http://h:8000/v1", "http://h:8000"),
        ("h:8000/v1/", "http://h:8000"),
    ],
)
def test_the_server_url_is_taken_as_users_write_it(given: str, expected: str) -> None:
    assert base_url(given) == expected


def measurement(index: int, ttft: float | None, error: str | None = None) -> Measurement:
    return Measurement(
        index=index,
        arrival=float(index),
        prompt_tokens=10,
        completion_tokens=11,
        recorded_ttft=0.1,
        recorded_itl=0.01,
        recorded_e2e=0.2,
        error=error,
        ttft=ttft,
        itl=None if ttft is None else 0.012,
        e2e=None if ttft is None else 0.25,
        tokens=None if ttft is None else 11,
    )


def test_the_aggregate_counts_only_the_requests_that_succeeded() -> None:
    report = ReplayReport("http://h", "m", 1.0, 3.0)
    report.measurements = [
        measurement(0, 0.11),
        measurement(1, 0.13),
        measurement(2, None, "HTTP 400"),
        measurement(3, None, "HTTP 400"),
        measurement(4, None, "timeout (5 s)"),
    ]
    document = report.as_dict()
    assert (document["requests"], document["succeeded"], document["failed"]) == (5, 2, 3)
    assert document["failures"] == {"HTTP 400": 2, "timeout (5 s)": 1}
    ttft = document["metrics"]["ttft"]
    assert ttft["count"] == 2
    assert ttft["measured_mean"] == pytest.approx(0.12)
    assert ttft["mean_error_pct"] == pytest.approx(20.0)
    assert document["metrics"]["itl"]["mean_error_pct"] == pytest.approx(20.0)
    assert document["metrics"]["e2e"]["p90_error_pct"] == pytest.approx(25.0)
    assert measurement(0, 0.11).as_dict()["error_pct"]["ttft"] == pytest.approx(10.0)
