import math

import pytest

from llmsim.metrics.collector import ExpositionState, SimulatorCollector
from llmsim.metrics.fake import fake_value, function_value
from llmsim.metrics.recorder import MetricsRecorder
from llmsim.scenario.fake_metrics import FakeFunction, FakeMetrics


def fn(text: str) -> FakeFunction:
    value = FakeMetrics.model_validate({"running-requests": text}).running_requests
    assert isinstance(value, FakeFunction)
    return value


@pytest.mark.parametrize(
    ("spec", "elapsed", "expected"),
    [
        ("oscillate:0:10:4s", 0.0, 5.0),
        ("oscillate:0:10:4s", 1.0, 10.0),
        ("oscillate:0:10:4s", 3.0, 0.0),
        ("ramp:2:12:10s", 0.0, 2.0),
        ("ramp:2:12:10s", 5.0, 7.0),
        ("ramp:2:12:10s", 25.0, 12.0),
        ("rampreset:0:100:10s", 2.5, 25.0),
        ("rampreset:0:100:10s", 12.5, 25.0),
        ("squarewave:1:9:2s", 0.5, 1.0),
        ("squarewave:1:9:2s", 1.5, 9.0),
        ("squarewave:1:9:2s", 2.2, 1.0),
    ],
)
def test_generator_functions_follow_upstream_formulas_FAKE_3(
    spec: str, elapsed: float, expected: float
) -> None:
    assert function_value(fn(spec), elapsed) == pytest.approx(expected, abs=1e-9)


def test_functions_are_re_evaluated_only_at_each_refresh_FAKE_3() -> None:
    ramp = fn("ramp:0:10:10s")
    assert fake_value(ramp, 1.29, refresh_interval=0.5) == pytest.approx(1.0)
    assert fake_value(ramp, 1.51, refresh_interval=0.5) == pytest.approx(1.5)
    assert fake_value(3.0, 123.0, refresh_interval=0.1) == 3.0


def collector_at(fake: FakeMetrics, now: list[float]) -> SimulatorCollector:
    state = ExpositionState(
        model_name="m",
        scenario_name="s",
        running=lambda: 99,
        waiting=lambda: 99,
        kv_usage=lambda: 0.5,
        max_loras=1,
        block_size=16,
        num_gpu_blocks=1024,
        fake=fake,
        fake_refresh_interval=0.1,
    )
    return SimulatorCollector(MetricsRecorder(1024), state, clock=lambda: now[0])


def gauge(collector: SimulatorCollector, name: str) -> float:
    family = next(f for f in collector.collect() if f.name == name)
    return float(family.samples[0].value)


def test_collector_reports_fake_gauges_at_injected_instants_FAKE_3() -> None:
    now = [100.0]
    fake = FakeMetrics.model_validate(
        {
            "running-requests": "oscillate:0:10:4s",
            "waiting-requests": "ramp:0:7:7s",
            "kv-cache-usage": "squarewave:0.2:0.8:2s",
        }
    )
    collector = collector_at(fake, now)
    assert gauge(collector, "vllm:num_requests_running") == 5.0
    assert gauge(collector, "vllm:kv_cache_usage_perc") == pytest.approx(0.2)
    now[0] = 101.0
    assert gauge(collector, "vllm:num_requests_running") == 10.0
    assert gauge(collector, "vllm:kv_cache_usage_perc") == pytest.approx(0.8)
    now[0] = 103.5
    assert gauge(collector, "vllm:num_requests_waiting") == 3.0  # 3.5 truncated
    expected = int(5 + 5 * math.sin(2 * math.pi * 3.5 / 4))
    assert gauge(collector, "vllm:num_requests_running") == expected


def test_fake_mode_reports_nothing_real_FAKE_5() -> None:
    now = [0.0]
    collector = collector_at(FakeMetrics.model_validate({"running-requests": 2}), now)
    collector.recorder.prompt_tokens_total = 500
    assert gauge(collector, "vllm:num_requests_running") == 2.0
    assert gauge(collector, "vllm:num_requests_waiting") == 0.0
    assert gauge(collector, "vllm:prompt_tokens") == 0.0


@pytest.mark.parametrize(
    "bad",
    [
        {"running-requests": -1},
        {"kv-cache-usage": 1.5},
        {"kv-cache-usage": "ramp:0:2:1s"},
        {"running-requests": "sine:0:1:1s"},
        {"running-requests": "ramp:0:1"},
        {"running-requests": "ramp:0:1:0s"},
        {"running-requests": "ramp:0:1:soon"},
        {"ttft-buckets-values": [1, -1]},
        {"request-success-total": {"bogus": 1}},
        {"prefix-cache-hits": 3},
        {"prefix-cache-hits": 5, "prefix-cache-queries": 3},
        {"loras": ["{not json"]},
        {"ttft-buckets-values": [0] * 24},
    ],
)
def test_invalid_fake_metrics_are_rejected_FAKE_4(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FakeMetrics.model_validate(bad)
