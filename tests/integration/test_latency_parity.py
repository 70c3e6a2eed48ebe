"""Upstream's latency model as a client measures it (LAT-1 to LAT-7).

Tolerances come from the configuration: each assertion allows a few milliseconds of HTTP and
scheduling overhead on top of the configured times, never a bare sleep.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support import PROJECT_ROOT, RunningServer

pytestmark = pytest.mark.usefixtures("steady_gc")

SLACK = 0.015
"""HTTP round trip and scheduling overhead allowed on top of a configured time."""


def first_token_time(server: RunningServer, payload: dict[str, object]) -> float:
    """Seconds from sending a streamed request to its first content."""
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        client.get("/health")
        start = time.perf_counter()
        with client.stream("POST", "/v1/completions", json={**payload, "stream": True}) as r:
            assert r.status_code == 200, r.read()
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    return time.perf_counter() - start
    raise AssertionError("no token")


def total_time(server: RunningServer, payload: dict[str, object]) -> float:
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        client.get("/health")
        start = time.perf_counter()
        response = client.post("/v1/completions", json=payload)
        assert response.status_code == 200, response.text
        return time.perf_counter() - start


def prompt_of(tokens: int) -> str:
    """A prompt of exactly ``tokens`` simulated tokens."""
    return "word " * tokens


@pytest.fixture(scope="module")
def per_token(server_factory: ServerFactory) -> RunningServer:
    return server_factory(
        "version: 1\nmodel: {name: m, max-model-len: 4096}\n"
        "latency:\n  latency-calculator: per-token\n  prefill-overhead: 20ms\n"
        "  prefill-time-per-token: 1ms\n  inter-token-latency: 5ms\n"
    )


def test_per_token_ttft_grows_by_prefill_time_per_token_LAT_2(per_token: RunningServer) -> None:
    short = first_token_time(per_token, {"model": "m", "prompt": prompt_of(10), "max_tokens": 2})
    long = first_token_time(per_token, {"model": "m", "prompt": prompt_of(1000), "max_tokens": 2})
    assert short == pytest.approx(0.020 + 0.010, abs=SLACK)
    assert long - short == pytest.approx(0.990, rel=0.05)


def test_legacy_rule_uses_per_token_when_ttft_and_std_dev_are_zero_LAT_2(
    server_factory: ServerFactory,
) -> None:
    legacy = server_factory(
        "version: 1\nmodel: {name: m}\n"
        "latency: {prefill-overhead: 50ms, prefill-time-per-token: 2ms}\n"
    )
    assert first_token_time(
        legacy, {"model": "m", "prompt": prompt_of(50), "max_tokens": 1}
    ) == pytest.approx(0.050 + 0.100, abs=SLACK)
    constant = server_factory(
        "version: 1\nmodel: {name: m}\n"
        "latency: {time-to-first-token: 80ms, prefill-overhead: 50ms,"
        " prefill-time-per-token: 2ms}\n"
    )
    assert first_token_time(
        constant, {"model": "m", "prompt": prompt_of(50), "max_tokens": 1}
    ) == pytest.approx(0.080, abs=SLACK)


def test_jittered_ttft_stays_within_the_upstream_clamp_LAT_5(server_factory: ServerFactory) -> None:
    server = server_factory(
        "version: 1\nmodel: {name: m}\n"
        "latency: {time-to-first-token: 100ms, time-to-first-token-std-dev: 30ms}\n"
    )
    times = [
        first_token_time(server, {"model": "m", "prompt": "x", "max_tokens": 1}) for _ in range(15)
    ]
    assert all(0.030 - 0.002 <= t <= 0.170 + SLACK for t in times)
    assert max(times) - min(times) > 0.010


def test_sub_millisecond_itl_is_honoured_not_truncated_LAT_5(server_factory: ServerFactory) -> None:
    server = server_factory("version: 1\nmodel: {name: m}\nlatency: {inter-token-latency: 500us}\n")
    elapsed = total_time(
        server, {"model": "m", "prompt": "x", "max_tokens": 201, "ignore_eos": True}
    )
    assert elapsed == pytest.approx(0.100, abs=SLACK)


def test_non_stream_waits_ttft_plus_n_minus_one_itl_LAT_1_LAT_7(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        "version: 1\nmodel: {name: m}\n"
        "latency: {time-to-first-token: 50ms, inter-token-latency: 10ms}\n"
    )
    elapsed = total_time(
        server, {"model": "m", "prompt": "x", "max_tokens": 11, "ignore_eos": True}
    )
    assert elapsed == pytest.approx(0.050 + 10 * 0.010, abs=SLACK)


@pytest.fixture(scope="module")
def disaggregated(server_factory: ServerFactory) -> RunningServer:
    return server_factory(
        "version: 1\nmodel: {name: m, max-model-len: 4096}\n"
        "latency:\n  time-to-first-token: 40ms\n  kv-cache-transfer-latency: 250ms\n"
        "  inter-token-latency: 5ms\n"
    )


def test_remote_prefill_ttft_is_the_kv_transfer_time_LAT_4_API_PD_1(
    disaggregated: RunningServer,
) -> None:
    local = first_token_time(disaggregated, {"model": "m", "prompt": "x", "max_tokens": 1})
    remote = first_token_time(
        disaggregated,
        {
            "model": "m",
            "prompt": "x",
            "max_tokens": 1,
            "kv_transfer_params": {"do_remote_prefill": True},
        },
    )
    assert local == pytest.approx(0.040, abs=SLACK)
    assert remote == pytest.approx(0.250, abs=SLACK)


def test_remote_prefill_per_token_uses_the_whole_prompt_LAT_4(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        "version: 1\nmodel: {name: m, max-model-len: 4096}\n"
        "latency: {latency-calculator: per-token, kv-cache-transfer-time-per-token: 2ms}\n"
    )
    remote = first_token_time(
        server,
        {
            "model": "m",
            "prompt": prompt_of(128),
            "max_tokens": 1,
            "kv_transfer_params": {"do_remote_prefill": True},
        },
    )
    assert remote == pytest.approx(0.256, abs=SLACK)


def test_remote_decode_answers_for_the_decode_peer_API_PD_2_GEN_5(
    disaggregated: RunningServer,
) -> None:
    payload = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": 3,
        "kv_transfer_params": {"do_remote_decode": True},
    }
    body = httpx.post(f"{disaggregated.base_url}/v1/chat/completions", json=payload).json()
    assert body["choices"][0]["finish_reason"] == "remote_decode"
    assert body["kv_transfer_params"] == {
        "do_remote_decode": False,
        "do_remote_prefill": True,
        "remote_engine_id": "DUMMY_ID",
        "remote_block_ids": ["DUMMY_ID"],
        "remote_host": "DUMMY",
        "remote_port": 1234,
        "tp_size": 1,
    }
    streamed = httpx.post(
        f"{disaggregated.base_url}/v1/chat/completions", json={**payload, "stream": True}
    )
    assert streamed.status_code == 400
    assert streamed.json()["error"]["message"] == "Prefill does not support streaming"


@pytest.fixture(scope="module")
def loaded(server_factory: ServerFactory) -> RunningServer:
    return server_factory(
        "version: 1\nmodel: {name: m}\nengine: {max-num-seqs: 4}\n"
        "latency:\n  time-to-first-token: 100ms\n  inter-token-latency: 20ms\n"
        "  time-factor-under-load: 3\n"
    )


def test_time_factor_scales_ttft_and_itl_with_running_requests_LAT_3(
    loaded: RunningServer,
) -> None:
    alone = total_time(loaded, {"model": "m", "prompt": "x", "max_tokens": 1})
    assert alone == pytest.approx(0.100, abs=SLACK)

    async def ttfts() -> list[float]:
        async with httpx.AsyncClient(base_url=loaded.base_url, timeout=30) as client:

            async def one() -> float:
                start = time.perf_counter()
                payload = {"model": "m", "prompt": "x", "max_tokens": 3, "ignore_eos": True}
                async with client.stream(
                    "POST", "/v1/completions", json={**payload, "stream": True}
                ) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: {"):
                            return time.perf_counter() - start
                raise AssertionError("no token")

            await asyncio.gather(*(client.get("/health") for _ in range(4)))
            return sorted(await asyncio.gather(*(one() for _ in range(4))))

    # Admitted one after the other, the k-th request sees k running: F = 1 + 2 (k - 1) / 3.
    expected = [0.100 * (1 + 2 * k / 3) for k in range(4)]
    assert asyncio.run(ttfts()) == pytest.approx(expected, abs=SLACK + 0.005)


def test_invalid_std_dev_stops_the_server_from_starting_LAT_6(tmp_path: object) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmsim",
            "run",
            "--set",
            "latency.inter-token-latency=10ms",
            "--set",
            "latency.inter-token-latency-std-dev=5ms",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert result.returncode == 1
    assert "latency.inter-token-latency-std-dev: must be at most 30% of inter-token-latency" in (
        result.stderr
    )
