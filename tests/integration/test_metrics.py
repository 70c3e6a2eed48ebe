"""``/metrics`` as Prometheus reads it: names, types, labels, buckets and true values (MET-*).

Parsed with prometheus_client's text parser; values are checked against what clients saw.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from llmsim.metrics.buckets import REQUEST_LATENCY_BUCKETS, TPOT_BUCKETS, TTFT_BUCKETS
from tests.conftest import ServerFactory
from tests.metrics_support import buckets, scrape, value
from tests.support import RunningServer, drain_stream

MODEL = "shown-name"
SCENARIO = """
version: 1
model: {name: real/model, served-model-name: [shown-name, alias], max-model-len: 1024}
engine: {max-num-seqs: 8}
latency: {time-to-first-token: 20ms, inter-token-latency: 5ms}
"""
GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")
COUNTERS = (
    "vllm:prompt_tokens",
    "vllm:generation_tokens",
    "vllm:prefix_cache_hits",
    "vllm:prefix_cache_queries",
)
TOKEN_BUCKETS = ["1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "100.0", "200.0", "500.0", "1000.0"]
HISTOGRAMS = {
    "vllm:time_to_first_token_seconds": TTFT_BUCKETS,
    "vllm:time_per_output_token_seconds": TPOT_BUCKETS,
    "vllm:inter_token_latency_seconds": TPOT_BUCKETS,
    "vllm:request_time_per_output_token_seconds": TPOT_BUCKETS,
    "vllm:e2e_request_latency_seconds": REQUEST_LATENCY_BUCKETS,
    "vllm:request_queue_time_seconds": REQUEST_LATENCY_BUCKETS,
    "vllm:request_inference_time_seconds": REQUEST_LATENCY_BUCKETS,
    "vllm:request_prefill_time_seconds": REQUEST_LATENCY_BUCKETS,
    "vllm:request_decode_time_seconds": REQUEST_LATENCY_BUCKETS,
}
TOKEN_HISTOGRAMS = (
    "vllm:request_prompt_tokens",
    "vllm:request_generation_tokens",
    "vllm:request_params_max_tokens",
    "vllm:request_max_num_generation_tokens",
)


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


def test_every_family_has_vllm_name_type_labels_and_buckets_MET_1_to_MET_4(
    server: RunningServer,
) -> None:
    families = scrape(server)
    for name in GAUGES:
        assert families[name].type == "gauge"
        assert [s.labels for s in families[name].samples] == [{"model_name": MODEL}]
    for name in COUNTERS:
        assert families[name].type == "counter"
        assert {s.name for s in families[name].samples} == {f"{name}_total"}
        assert families[name].samples[0].labels == {"model_name": MODEL}
    assert families["vllm:request_success"].type == "counter"
    for name, bounds in HISTOGRAMS.items():
        assert families[name].type == "histogram"
        assert [le for le, _ in buckets(families, name)] == [repr(float(b)) for b in bounds] + [
            "+Inf"
        ]
        assert {s.labels.get("model_name") for s in families[name].samples} == {MODEL}
    for name in TOKEN_HISTOGRAMS:
        assert families[name].type == "histogram"
        assert [le for le, _ in buckets(families, name)] == [*TOKEN_BUCKETS, "+Inf"]
    lora = families["vllm:lora_requests_info"]
    assert lora.type == "gauge"
    assert lora.samples[0].labels == {
        "max_lora": "1",
        "running_lora_adapters": "",
        "waiting_lora_adapters": "",
    }
    assert lora.samples[0].value == pytest.approx(time.time(), abs=3600)
    cache = families["vllm:cache_config_info"]
    assert cache.samples[0].labels == {"block_size": "16", "num_gpu_blocks": "1024"}
    assert cache.samples[0].value == 1.0
    scenario_info = families["llmsim:scenario_info"]
    assert scenario_info.samples[0].labels == {
        "model_name": MODEL,
        "scenario": "unnamed",
        "phase": "",
    }


def test_no_created_series_and_no_process_metrics_DIFF_2(server: RunningServer) -> None:
    text = httpx.get(f"{server.base_url}/metrics").text
    assert "_created" not in text
    assert "process_" not in text and "python_" not in text


def test_counters_and_histograms_match_the_workload_MET_5(server: RunningServer) -> None:
    before = scrape(server)
    completion_tokens = 0
    prompt_tokens = 0
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for tokens in (1, 3, 7):
            body = client.post(
                "/v1/completions",
                json={
                    "model": "alias",
                    "prompt": "This is a test.",
                    "max_tokens": tokens,
                    "ignore_eos": True,
                },
            ).json()
            completion_tokens += body["usage"]["completion_tokens"]
            prompt_tokens += body["usage"]["prompt_tokens"]
        stream = client.post(
            "/v1/chat/completions",
            json={
                "model": MODEL,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 4,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
        usage = [line for line in stream.text.splitlines() if '"usage":{' in line]
        assert len(usage) == 1
        completion_tokens += 4
        prompt_tokens += 6
        n_body = client.post(
            "/v1/completions",
            json={"model": MODEL, "prompt": "x", "n": 2, "max_tokens": 2, "ignore_eos": True},
        ).json()
        completion_tokens += n_body["usage"]["completion_tokens"]
        prompt_tokens += 2 * n_body["usage"]["prompt_tokens"]  # counted once per choice
    after = scrape(server)

    def delta(name: str, suffix: str, **labels: str) -> float:
        return value(after, name, suffix, **labels) - value(before, name, suffix, **labels)

    choices = 3 + 1 + 2
    assert delta("vllm:generation_tokens", "_total") == completion_tokens
    assert delta("vllm:prompt_tokens", "_total") == prompt_tokens
    assert delta("vllm:request_success", "_total", finished_reason="length") == choices
    for name in (*HISTOGRAMS, *TOKEN_HISTOGRAMS):
        if name not in ("vllm:time_per_output_token_seconds", "vllm:inter_token_latency_seconds"):
            assert delta(name, "_count") == choices, name
    itls = (1 - 1) + (3 - 1) + (7 - 1) + (4 - 1) + 2 * (2 - 1)
    assert delta("vllm:inter_token_latency_seconds", "_count") == itls
    assert delta("vllm:inter_token_latency_seconds", "_sum") == pytest.approx(itls * 0.005)
    assert delta("vllm:request_generation_tokens", "_sum") == completion_tokens
    assert delta("vllm:request_params_max_tokens", "_sum") == 1 + 3 + 7 + 4 + 2 * 2
    assert delta("vllm:time_to_first_token_seconds", "_sum") == pytest.approx(
        choices * 0.020, abs=choices * 0.005
    )
    assert delta("vllm:request_decode_time_seconds", "_sum") == pytest.approx(
        itls * 0.005, abs=choices * 0.003
    )


def test_gauges_follow_the_engine_at_every_scrape_SCHED_4(server_factory: ServerFactory) -> None:
    slow = server_factory(
        "version: 1\nmodel: {name: m}\nengine: {max-num-seqs: 5}\n"
        "latency: {time-to-first-token: 50ms, inter-token-latency: 50ms}\n"
    )

    async def run() -> tuple[float, float, float, float]:
        async with httpx.AsyncClient(base_url=slow.base_url, timeout=60) as client:
            payload = {
                "model": "m",
                "prompt": "x",
                "max_tokens": 12,
                "ignore_eos": True,
                "stream": True,
            }

            tasks = [
                asyncio.create_task(drain_stream(client, "/v1/completions", payload))
                for _ in range(20)
            ]
            await asyncio.sleep(0.3)
            families = await asyncio.to_thread(scrape, slow)
            during = (
                value(families, "vllm:num_requests_running"),
                value(families, "vllm:num_requests_waiting"),
            )
            await asyncio.gather(*tasks)
            families = await asyncio.to_thread(scrape, slow)
            return (
                *during,
                value(families, "vllm:num_requests_running"),
                value(families, "vllm:num_requests_waiting"),
            )

    running, waiting, running_after, waiting_after = asyncio.run(run())
    assert (running, waiting) == (5, 15)
    assert (running_after, waiting_after) == (0, 0)
