"""Fake metric values at a moment: upstream's generator functions (FAKE-3).

A function is re-evaluated every refresh interval from the moment the generator started; between
refreshes its value holds. Evaluating at the start of the current interval gives exactly that
without a background task.
"""

from __future__ import annotations

import math

from llmsim.scenario.fake_metrics import FakeFunction


def function_value(function: FakeFunction, elapsed: float) -> float:
    """The function's value ``elapsed`` seconds after the generator started."""
    start, end, period = function.start, function.end, function.period
    if function.function == "oscillate":
        return (start + end) / 2 + (end - start) / 2 * math.sin(2 * math.pi * elapsed / period)
    if function.function == "ramp":
        return start + (elapsed / period) * (end - start) if elapsed < period else end
    if function.function == "rampreset":
        return start + ((elapsed % period) / period) * (end - start)
    return start if (elapsed % period) < period / 2 else end


def fake_value(value: float | FakeFunction, elapsed: float, refresh_interval: float) -> float:
    """A fake gauge's value: a constant, or its function at the last refresh before ``elapsed``."""
    if isinstance(value, FakeFunction):
        refreshed_at = math.floor(elapsed / refresh_interval) * refresh_interval
        return function_value(value, refreshed_at)
    return float(value)
