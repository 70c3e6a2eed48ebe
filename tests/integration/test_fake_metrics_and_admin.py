"""Fake metrics and runtime reconfiguration through the running server (FAKE-*, CFG-ADMIN-*)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.metrics_support import buckets, scrape, value
from tests.support import RunningServer

FAKE = """
version: 1
model: {name: fake-model}
metrics:
  fake-metrics:
    running-requests: 7
    waiting-requests: 3
    kv-cache-usage: 0.25
    ttft-buckets-values: [1, 2, 3]
    request-prompt-tokens: [10, 20, 30]
    request-success-total: {stop: 20, length: 5}
    loras:
      - '{"running": "lora-a,lora-b", "waiting": "lora-c", "timestamp": 1257894000}'
      - {running: [lora-a], waiting: "", timestamp: 1257894010}
"""


@pytest.fixture
def fake(server_factory: ServerFactory) -> RunningServer:
    return server_factory(FAKE)


def test_fake_values_replace_real_ones_FAKE_1_FAKE_2(fake: RunningServer) -> None:
    httpx.post(f"{fake.base_url}/v1/completions", json={"model": "fake-model", "prompt": "x"})
    families = scrape(fake)
    assert value(families, "vllm:num_requests_running") == 7
    assert value(families, "vllm:num_requests_waiting") == 3
    assert value(families, "vllm:kv_cache_usage_perc") == 0.25
    assert buckets(families, "vllm:time_to_first_token_seconds")[:4] == [
        ("0.001", 1.0),
        ("0.005", 3.0),
        ("0.01", 6.0),
        ("0.02", 6.0),
    ]
    assert value(families, "vllm:prompt_tokens", "_total") == 10 * 1 + 20 * 2 + 30 * 5
    assert value(families, "vllm:request_success", "_total", finished_reason="stop") == 20
    assert value(families, "vllm:request_success", "_total", finished_reason="tool_calls") == 0
    assert value(families, "vllm:generation_tokens", "_total") == 0
    assert value(families, "vllm:e2e_request_latency_seconds", "_count") == 0
    lora = sorted(
        (s.labels["running_lora_adapters"], s.labels["waiting_lora_adapters"], s.value)
        for s in families["vllm:lora_requests_info"].samples
    )
    assert lora == [("lora-a", "", 1257894010.0), ("lora-a,lora-b", "lora-c", 1257894000.0)]


def test_partial_updates_replace_only_the_keys_given_FAKE_6(fake: RunningServer) -> None:
    response = httpx.post(
        f"{fake.base_url}/admin/config",
        json={
            "fake-metrics": {
                "running-requests": 9,
                "ttft-buckets-values": [0, 4],
                "request-success-total": {},
                "waiting-requests": None,
            }
        },
    )
    assert response.status_code == 200
    assert response.json()["fake-metrics"]["running-requests"] == 9
    families = scrape(fake)
    assert value(families, "vllm:num_requests_running") == 9
    assert value(families, "vllm:num_requests_waiting") == 3
    assert buckets(families, "vllm:time_to_first_token_seconds")[:2] == [
        ("0.001", 0.0),
        ("0.005", 4.0),
    ]
    assert value(families, "vllm:request_success", "_total", finished_reason="stop") == 0
    assert value(families, "vllm:prompt_tokens", "_total") == 200
    deprecated = httpx.post(f"{fake.base_url}/fake_metrics", json={"kv-cache-usage": 0.75})
    assert deprecated.status_code == 204
    assert value(scrape(fake), "vllm:kv_cache_usage_perc") == 0.75


def test_invalid_fake_update_is_400_and_changes_nothing_FAKE_4(fake: RunningServer) -> None:
    before = httpx.get(f"{fake.base_url}/admin/config").json()
    bad_loras = {"loras": [{"running": [1, {"a": 2}], "waiting": [], "timestamp": 1}]}
    for bad in (
        {"kv-cache-usage": 3},
        {"running-requests": "sine:0:1:1s"},
        {"bogus": 1},
        bad_loras,
    ):
        response = httpx.post(f"{fake.base_url}/admin/config", json={"fake-metrics": bad})
        assert response.status_code == 400, bad
        deprecated = httpx.post(f"{fake.base_url}/fake_metrics", json=bad)
        assert deprecated.status_code == 400
        assert "error" in deprecated.json()
    assert httpx.get(f"{fake.base_url}/admin/config").json() == before


def test_fake_updates_need_fake_metrics_at_start_FAKE_6(server_factory: ServerFactory) -> None:
    real = server_factory("version: 1\n")
    response = httpx.post(
        f"{real.base_url}/admin/config", json={"fake-metrics": {"running-requests": 1}}
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "the simulator is reporting real metrics; fake metrics cannot be updated"
    )


@pytest.fixture
def adjustable(server_factory: ServerFactory) -> RunningServer:
    return server_factory(
        "version: 1\nmodel: {name: m}\n"
        "latency: {time-to-first-token: 300ms, inter-token-latency: 0ms}\n"
    )


def first_token_after(server: RunningServer) -> float:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        start = time.perf_counter()
        client.post("/v1/completions", json={"model": "m", "prompt": "x", "max_tokens": 1})
        return time.perf_counter() - start


def test_get_config_shows_upstream_flat_keys_CFG_ADMIN_1(adjustable: RunningServer) -> None:
    config = httpx.get(f"{adjustable.base_url}/admin/config").json()
    assert config["model"] == "m"
    assert config["time-to-first-token"] == "300ms"
    assert config["inter-token-latency"] == "0s"
    assert config["max-num-seqs"] == 5
    assert config["active-phase"] is None
    assert config["scenario"] == "unnamed"


@pytest.mark.parametrize(
    ("update", "fragment"),
    [
        ({"max-num-seqs": 9}, "field 'max-num-seqs' is not admin-configurable"),
        ({"time-to-first-token": "soon"}, "invalid duration"),
        ({"time-to-first-token": "-1s"}, "must not be negative"),
        ({"time-to-first-token-std-dev": "200ms"}, "at most 30%"),
        ({"time-factor-under-load": 0.5}, "greater than or equal to 1"),
        ({"latency-calculator": "magic"}, "latency-calculator"),
    ],
)
def test_invalid_update_is_400_and_changes_nothing_CFG_ADMIN_2(
    adjustable: RunningServer, update: dict[str, object], fragment: str
) -> None:
    before = httpx.get(f"{adjustable.base_url}/admin/config").json()
    response = httpx.post(f"{adjustable.base_url}/admin/config", json=update)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]
    assert httpx.get(f"{adjustable.base_url}/admin/config").json() == before
    bad_json = httpx.post(f"{adjustable.base_url}/admin/config", content=b"{nope")
    assert bad_json.status_code == 400
    assert first_token_after(adjustable) == pytest.approx(0.300, abs=0.05)


def test_update_changes_the_next_request_not_the_one_in_flight_CFG_ADMIN_2(
    adjustable: RunningServer,
) -> None:
    async def run() -> tuple[float, float, dict[str, object]]:
        async with httpx.AsyncClient(base_url=adjustable.base_url, timeout=10) as client:
            payload = {"model": "m", "prompt": "x", "max_tokens": 1}
            start = time.perf_counter()
            in_flight = asyncio.create_task(client.post("/v1/completions", json=payload))
            await asyncio.sleep(0.1)
            # An integer duration counts nanoseconds, as in upstream's JSON (CFG-3).
            update = await client.post("/admin/config", json={"time-to-first-token": 50_000_000})
            await in_flight
            old = time.perf_counter() - start
            start = time.perf_counter()
            await client.post("/v1/completions", json=payload)
            return old, time.perf_counter() - start, update.json()

    old, new, config = asyncio.run(run())
    assert config["time-to-first-token"] == "50ms"
    assert old == pytest.approx(0.300, abs=0.05)
    assert new == pytest.approx(0.050, abs=0.03)
