"""The KV cache and its ZMQ events as llm-d sees them: a real SUB socket, plain msgpack, block
hashes checked against the definition (KV-*, ZMQ-*, SLEEP-*)."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import msgpack
import pytest
import zmq

from tests.conftest import ServerFactory
from tests.kv_support import Subscriber, expected_chain, subscriber
from tests.metrics_support import scrape, value
from tests.support import PROJECT_ROOT, RunningServer, free_port

MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
POD_IP = "10.11.12.13"
BLOCK = 8


def kv_scenario(
    endpoint: str, *, capacity: int = 64, map_format: bool = False, extra: str = ""
) -> str:
    return (
        f"version: 1\nmodel: {{name: {MODEL}, served-model-name: [qwen]}}\n"
        "latency: {time-to-first-token: 5ms}\n"
        f"kv-cache:\n  enable-kvcache: true\n  block-size: {BLOCK}\n  kv-cache-size: {capacity}\n"
        f"  hash-seed: '42'\n  zmq-endpoint: '{endpoint}'\n  event-batch-size: 1\n"
        f"  use-vllm-map-event-format: {str(map_format).lower()}\n{extra}"
    )


def complete(server: RunningServer, prompt: object, **extra: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server.base_url}/v1/completions",
        json={"model": "qwen", "prompt": prompt, "max_tokens": 2, **extra},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def as_map(event: Any) -> dict[str, Any]:
    """An event in the map form, whichever encoding it came in (ZMQ-3 -> ZMQ-4)."""
    if isinstance(event, dict):
        return event
    kind = event[0]
    if kind == "BlockStored":
        mapped = {
            "type": kind,
            "block_hashes": event[1],
            "parent_block_hash": event[2] or None,
            "token_ids": event[3],
            "block_size": event[4],
            "medium": event[6],
        }
        if event[5] is not None:
            mapped["lora_id"] = event[5]
        if event[7] is not None:
            mapped["lora_name"] = event[7]
        assert len(event) == 9 and event[8] is None
        return mapped
    if kind == "BlockRemoved":
        return {"type": kind, "block_hashes": event[1], "medium": event[2]}
    return {"type": kind}


@pytest.fixture
def events() -> Iterator[Subscriber]:
    with subscriber() as sub:
        yield sub


def workload(server: RunningServer, sub: Subscriber) -> tuple[list[dict[str, Any]], list[int]]:
    """Two prompts sharing 4 blocks, then enough new ones to evict; the decoded events."""
    sub.settle()
    shared = list(range(1000, 1000 + 4 * BLOCK))
    first = shared + list(range(5000, 5000 + BLOCK)) + [7, 7, 7]  # 5 full blocks + a tail
    second = shared + list(range(6000, 6000 + 2 * BLOCK))  # 4 cached + 2 new
    cached = [
        complete(server, first)["usage"]["prompt_tokens_details"]["cached_tokens"],
        complete(server, second)["usage"]["prompt_tokens_details"]["cached_tokens"],
    ]
    complete(server, list(range(9000, 9000 + 4 * BLOCK)))  # 4 new: the cache of 8 must evict
    return [as_map(e) for e in sub.wait_for(3 + 3)], cached


def test_events_carry_the_llm_d_hash_chain_and_prefix_hits_KV_2_KV_4_KV_5_ZMQ_1(
    server_factory: ServerFactory, events: Subscriber
) -> None:
    server = server_factory(kv_scenario(events.endpoint, capacity=8), env={"POD_IP": POD_IP})
    decoded, cached = workload(server, events)
    assert cached == [0, 4 * BLOCK]
    shared = list(range(1000, 1000 + 4 * BLOCK))
    first_chain = expected_chain("42", "qwen", shared + list(range(5000, 5000 + BLOCK)), BLOCK)
    second_chain = expected_chain("42", "qwen", shared + list(range(6000, 6000 + 2 * BLOCK)), BLOCK)
    stored = [e for e in decoded if e["type"] == "BlockStored"]
    assert stored[0] == {
        "type": "BlockStored",
        "block_hashes": first_chain,
        "parent_block_hash": None,
        "token_ids": shared + list(range(5000, 5000 + BLOCK)),
        "block_size": BLOCK,
        "medium": "GPU",
    }
    assert stored[1]["block_hashes"] == second_chain[4:]
    assert stored[1]["parent_block_hash"] == first_chain[3]
    assert stored[1]["token_ids"] == list(range(6000, 6000 + 2 * BLOCK))
    removed = [e for e in decoded if e["type"] == "BlockRemoved"]
    # 7 blocks cached, capacity 8: 4 new ones evict the 3 oldest unused, one event each. A
    # finished request's blocks become unused tail first, so the shared prefix stays longest.
    assert [e["block_hashes"] for e in removed] == [
        [first_chain[4]],
        [second_chain[5]],
        [second_chain[4]],
    ]
    topics = {topic for topic, _, _ in events.batches}
    assert topics == {f"kv@{POD_IP}:{server.port}@{MODEL}".encode()}
    sequences = [seq for _, seq, _ in events.batches]
    assert sequences == list(range(1, len(sequences) + 1))
    assert all(batch[2] == 0 and isinstance(batch[0], float) for _, _, batch in events.batches)


def test_both_encodings_decode_to_the_same_content_ZMQ_3_ZMQ_4(
    server_factory: ServerFactory,
) -> None:
    contents = []
    for map_format in (False, True):
        with subscriber() as sub:
            server = server_factory(
                kv_scenario(sub.endpoint, capacity=8, map_format=map_format),
                env={"POD_IP": POD_IP},
            )
            decoded, _ = workload(server, sub)
            raw = sub.events()
            assert all(isinstance(e, dict) == map_format for e in raw)
            contents.append(decoded)
    assert contents[0] == contents[1]


def test_cached_tokens_shorten_per_token_ttft_KV_4(
    server_factory: ServerFactory, events: Subscriber
) -> None:
    server = server_factory(
        kv_scenario(events.endpoint).replace(
            "latency: {time-to-first-token: 5ms}",
            "latency: {latency-calculator: per-token, prefill-time-per-token: 2ms}",
        ),
        env={"POD_IP": POD_IP},
    )
    prompt = list(range(100, 100 + 8 * BLOCK))
    with httpx.Client(base_url=server.base_url, timeout=30) as client:

        def ttft(ids: list[int]) -> float:
            start = time.perf_counter()
            response = client.post(
                "/v1/completions", json={"model": "qwen", "prompt": ids, "max_tokens": 1}
            )
            assert response.status_code == 200
            return time.perf_counter() - start

        ttft(list(range(9000, 9000 + BLOCK)))  # open the connection; warm the server up
        cold, warm = ttft(prompt), ttft(prompt)
    assert cold == pytest.approx(64 * 0.002, abs=0.02)
    assert warm < 0.02


def test_metrics_follow_the_cache_MET_6(server_factory: ServerFactory, events: Subscriber) -> None:
    server = server_factory(kv_scenario(events.endpoint, capacity=20), env={"POD_IP": POD_IP})
    prompt = list(range(300, 300 + 4 * BLOCK))
    complete(server, prompt)
    complete(server, prompt)
    families = scrape(server)
    assert value(families, "vllm:prefix_cache_queries", "_total") == 2 * 4 * BLOCK
    assert value(families, "vllm:prefix_cache_hits", "_total") == 4 * BLOCK
    assert value(families, "vllm:kv_cache_usage_perc") == 0.0
    cache = families["vllm:cache_config_info"].samples[0].labels
    assert cache == {"block_size": str(BLOCK), "num_gpu_blocks": "20"}


def test_kv_usage_counts_blocks_of_running_requests_MET_6(
    server_factory: ServerFactory, events: Subscriber
) -> None:
    server = server_factory(
        kv_scenario(events.endpoint, capacity=16).replace("5ms", "600ms"),
        env={"POD_IP": POD_IP},
    )

    async def run() -> float:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            request = client.post(
                "/v1/completions",
                json={"model": "qwen", "prompt": list(range(2 * BLOCK)), "max_tokens": 1},
            )
            task = asyncio.ensure_future(request)
            await asyncio.sleep(0.3)
            usage = value(await asyncio.to_thread(scrape, server), "vllm:kv_cache_usage_perc")
            await task
            return usage

    assert asyncio.run(run()) == 2 / 16
    assert value(scrape(server), "vllm:kv_cache_usage_perc") == 0.0


def test_prompt_larger_than_the_cache_is_400_KV_3(
    server_factory: ServerFactory, events: Subscriber
) -> None:
    server = server_factory(kv_scenario(events.endpoint, capacity=4), env={"POD_IP": POD_IP})
    response = httpx.post(
        f"{server.base_url}/v1/completions",
        json={"model": "qwen", "prompt": list(range(5 * BLOCK)), "max_tokens": 1},
    )
    assert response.status_code == 400
    assert "KV-cache blocks" in response.json()["error"]["message"]


def test_request_waits_while_running_requests_hold_the_cache_KV_3(
    server_factory: ServerFactory, events: Subscriber
) -> None:
    server = server_factory(
        kv_scenario(events.endpoint, capacity=4).replace("5ms", "300ms"), env={"POD_IP": POD_IP}
    )

    async def run() -> list[float]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:

            async def timed(start_id: int) -> float:
                start = time.perf_counter()
                response = await client.post(
                    "/v1/completions",
                    json={
                        "model": "qwen",
                        "prompt": list(range(start_id, start_id + 3 * BLOCK)),
                        "max_tokens": 1,
                    },
                )
                assert response.status_code == 200
                return time.perf_counter() - start

            await client.get("/health")
            return sorted(await asyncio.gather(timed(0), timed(10_000)))

    first, second = asyncio.run(run())
    assert first == pytest.approx(0.3, abs=0.05)
    assert second == pytest.approx(0.6, abs=0.07)


def test_no_subscriber_costs_nothing(server_factory: ServerFactory) -> None:
    def mean_latency(server: RunningServer) -> float:
        async def run() -> list[float]:
            limits = httpx.Limits(max_connections=50)
            async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=limits) as c:
                await asyncio.gather(*(c.get("/health") for _ in range(50)))
                semaphore = asyncio.Semaphore(50)

                async def one(i: int) -> float:
                    async with semaphore:
                        start = time.perf_counter()
                        r = await c.post(
                            "/v1/completions",
                            json={
                                "model": "qwen",
                                "prompt": list(range(i, i + 2 * BLOCK)),
                                "max_tokens": 1,
                            },
                        )
                        assert r.status_code == 200
                        return time.perf_counter() - start

                return list(await asyncio.gather(*(one(i) for i in range(1000))))

        return statistics.fmean(asyncio.run(run()))

    nobody = f"tcp://127.0.0.1:{free_port()}"
    scenario = kv_scenario(nobody, capacity=4096).replace("5ms", "30ms")
    with_events = server_factory(scenario, env={"POD_IP": POD_IP})
    without = server_factory(scenario.replace(nobody, ""), env={"POD_IP": POD_IP})
    on, off = mean_latency(with_events), mean_latency(without)
    assert on == pytest.approx(off, rel=0.05), (on, off)


def test_a_subscriber_that_vanishes_and_returns_costs_no_request_ZMQ_1(
    server_factory: ServerFactory,
) -> None:
    first = Subscriber()
    endpoint = first.endpoint
    server = server_factory(kv_scenario(endpoint), env={"POD_IP": POD_IP})
    first.settle()
    complete(server, list(range(100, 100 + 2 * BLOCK)))
    assert first.wait_for(1)
    first.close()  # the indexer goes away
    for i in range(20):
        complete(server, list(range(1000 * i, 1000 * i + 2 * BLOCK)))
    back = Subscriber(endpoint)  # and comes back on the same address
    try:
        back.settle(1.0)
        complete(server, list(range(50_000, 50_000 + 2 * BLOCK)))
        stored = [as_map(e) for e in back.wait_for(1)]
        assert stored and stored[-1]["type"] == "BlockStored"
    finally:
        back.close()
    assert httpx.get(f"{server.base_url}/health").status_code == 200


def test_replay_returns_retained_batches_then_the_sentinel_ZMQ_5(
    server_factory: ServerFactory, events: Subscriber
) -> None:
    replay = f"tcp://127.0.0.1:{free_port()}"
    server = server_factory(
        kv_scenario(
            events.endpoint,
            extra=f"  kv-events-replay-endpoint: '{replay}'\n  kv-events-replay-queue-size: 3\n",
        ),
        env={"POD_IP": POD_IP},
    )
    events.settle()
    for start_id in range(0, 5 * BLOCK, BLOCK):
        complete(server, list(range(start_id + 50_000, start_id + 50_000 + BLOCK)))
    published = events.wait_for(5)
    assert len(published) == 5
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(replay)
    try:
        dealer.send_multipart([b"", (4).to_bytes(8, "big")])
        replies = []
        while dealer.poll(3000):
            frames = dealer.recv_multipart()
            replies.append(frames)
            if frames[1] == b"":
                break
    finally:
        dealer.close(linger=0)
        context.term()
    *batches, sentinel = replies
    assert [int.from_bytes(f[2], "big") for f in batches] == [4, 5]
    by_seq = {seq: batch for _, seq, batch in events.batches}
    assert [msgpack.unpackb(f[3]) for f in batches] == [by_seq[4], by_seq[5]]
    assert sentinel == [b"", b"", (2**64 - 1).to_bytes(8, "big"), b""]


@pytest.mark.parametrize("stream", [False, True])
def test_cache_hit_threshold_answers_at_once_with_nothing_KV_6_API_CHAT_6(
    server_factory: ServerFactory, events: Subscriber, stream: bool
) -> None:
    server = server_factory(
        kv_scenario(events.endpoint).replace("5ms", "500ms"), env={"POD_IP": POD_IP}
    )
    payload = {
        "model": "qwen",
        "messages": [{"role": "user", "content": "an uncached prompt " * 10}],
        "cache_hit_threshold": 0.9,
        "stream": stream,
        "stream_options": {"include_usage": True},
    }
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        client.get("/health")  # open the connection before timing
        start = time.perf_counter()
        response = client.post("/v1/chat/completions", json=payload)
        elapsed = time.perf_counter() - start
    assert elapsed < 0.1  # the configured TTFT is 500 ms
    if stream:
        frames = [f.removeprefix("data: ") for f in response.text.split("\n\n") if f]
        assert frames[-1] == "[DONE]"
        import json

        chunks = [json.loads(f) for f in frames[:-1]]
        assert len(chunks) == 2
        assert chunks[0]["choices"] == [
            {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "cache_threshold"}
        ]
        assert chunks[1]["usage"]["completion_tokens"] == 0
    else:
        body = response.json()
        assert body["choices"][0]["finish_reason"] == "cache_threshold"
        assert "content" not in body["choices"][0]["message"]
        assert body["usage"]["completion_tokens"] == 0
        assert body["usage"]["prompt_tokens_details"] is None
    # The blocks were stored anyway: the same prompt now passes the threshold.
    again = httpx.post(f"{server.base_url}/v1/chat/completions", json={**payload, "stream": False})
    assert again.json()["choices"][0]["finish_reason"] in ("stop", "length")
    bad = httpx.post(
        f"{server.base_url}/v1/chat/completions", json={**payload, "cache_hit_threshold": 2}
    )
    assert bad.status_code == 400


def test_global_threshold_and_header_KV_6_HDR_4(
    server_factory: ServerFactory, events: Subscriber
) -> None:
    server = server_factory(
        kv_scenario(events.endpoint, extra="  global-cache-hit-threshold: 0.5\n"),
        env={"POD_IP": POD_IP},
    )
    body = complete(server, list(range(70_000, 70_000 + 4 * BLOCK)))
    assert body["choices"][0]["finish_reason"] == "cache_threshold"
    overridden = complete(server, list(range(80_000, 80_000 + 4 * BLOCK)), cache_hit_threshold=0)
    assert overridden["choices"][0]["finish_reason"] != "cache_threshold"
    no_kv = server_factory("version: 1\nmodel: {name: m}\n")
    forced = httpx.post(
        f"{no_kv.base_url}/v1/completions",
        json={"model": "m", "prompt": "x", "cache_hit_threshold": 1.0},
        headers={"X-Cache-Threshold-Finish-Reason": "true"},
    ).json()
    assert forced["choices"][0]["finish_reason"] == "cache_threshold"
    ignored = httpx.post(
        f"{no_kv.base_url}/v1/completions",
        json={"model": "m", "prompt": "x", "cache_hit_threshold": 1.0},
    ).json()
    assert ignored["choices"][0]["finish_reason"] != "cache_threshold"


def test_sleep_clears_and_bypasses_the_cache_until_wake_up_SLEEP_1_SLEEP_2(
    server_factory: ServerFactory, events: Subscriber
) -> None:
    server = server_factory(
        kv_scenario(events.endpoint).replace(
            "latency:", "server: {enable-sleep-mode: true}\nlatency:"
        ),
        env={"POD_IP": POD_IP, "VLLM_SERVER_DEV_MODE": "1"},
    )
    events.settle()
    prompt = list(range(4 * BLOCK))
    complete(server, prompt)
    assert httpx.post(f"{server.base_url}/sleep").status_code == 200
    assert httpx.get(f"{server.base_url}/is_sleeping").json() == {"is_sleeping": True}
    assert as_map(events.wait_for(2)[-1]) == {"type": "AllBlocksCleared"}
    asleep = complete(server, prompt)
    assert asleep["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert httpx.post(f"{server.base_url}/wake_up", params={"tags": "weights"}).status_code == 200
    assert httpx.get(f"{server.base_url}/is_sleeping").json() == {"is_sleeping": False}
    assert complete(server, prompt)["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    httpx.post(f"{server.base_url}/wake_up", params={"tags": "kv_cache"})
    complete(server, prompt)
    assert complete(server, prompt)["usage"]["prompt_tokens_details"]["cached_tokens"] == 32


def test_sleep_needs_dev_mode_SLEEP_1(server_factory: ServerFactory, events: Subscriber) -> None:
    server = server_factory(
        kv_scenario(events.endpoint).replace(
            "latency:", "server: {enable-sleep-mode: true}\nlatency:"
        ),
        env={"POD_IP": POD_IP, "VLLM_SERVER_DEV_MODE": "0"},
    )
    assert httpx.post(f"{server.base_url}/sleep").status_code == 200
    assert httpx.get(f"{server.base_url}/is_sleeping").json() == {"is_sleeping": False}


def test_events_need_pod_ip_KV_1(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "kv.yaml"
    path.write_text(kv_scenario("tcp://127.0.0.1:1"))
    env = {k: v for k, v in __import__("os").environ.items() if k != "POD_IP"}
    result = subprocess.run(
        [sys.executable, "-m", "llmsim", "run", str(path), "--port", str(free_port())],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=30,
    )
    assert result.returncode == 1
    assert "IP should be defined in the environment (POD_IP) for KV cache to work" in result.stderr
