import pytest

from llmsim.scenario.units import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("750us", 750e-6),
        ("750µs", 750e-6),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("2m", 120.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("0s", 0.0),
        ("100ns", 100e-9),
        (" 20ms ", 0.02),
        (250, 0.25),
        (1.5, 0.0015),
        ("250", 0.25),
    ],
)
def test_duration_forms_parse_to_seconds(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-5ms", "must not be negative"),
        (-1, "must not be negative"),
        ("fast", "invalid duration"),
        ("10 ms", "invalid duration"),
        ("5d", "invalid duration"),
        ("", "invalid duration"),
        (True, "boolean"),
        ([1], "expected a duration"),
        (float("inf"), "finite"),
    ],
)
def test_bad_durations_are_rejected_with_a_reason(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0s"), (0.25, "250ms"), (1.5, "1.5s"), (750e-6, "750us"), (120.0, "120s")],
)
def test_durations_format_back_to_short_text(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)
