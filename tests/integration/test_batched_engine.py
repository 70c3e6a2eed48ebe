"""The batched engine against a live server: ITL follows the batch, a step's tokens leave
together, a long prompt's chunks slow the decodes beside it, a full KV cache preempts, and the
engine's own metrics are vLLM's.

Expected times come from the step-time model: a step lasts base + per-prefill-token x prompt
tokens in it + per-decode-token x decoding sequences in it.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerFactory
from tests.support import RunningServer

pytestmark = pytest.mark.usefixtures("steady_gc")

BASE = 0.005
PER_PREFILL = 0.00005
PER_DECODE = 0.0002
BUDGET = 512


def scenario(extra: str = "", budget: int = BUDGET) -> str:
    return f"""
version: 1
seed: 3
model: {{name: batched, max-model-len: 8192}}
engine:
  mode: batched
  max-num-seqs: 64
  max-num-batched-tokens: {budget}
  step-time: {{base: 5ms, per-prefill-token: 50us, per-decode-token: 200us}}
{extra}"""


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(scenario())


async def stream(
    client: httpx.AsyncClient, server: RunningServer, prompt_tokens: int, tokens: int
) -> list[float]:
    """Arrival times of a streamed completion's tokens (the prompt given as token ids)."""
    body = {
        "model": "batched",
        "prompt": list(range(1, prompt_tokens + 1)),
        "max_tokens": tokens,
        "ignore_eos": True,
        "stream": True,
    }
    arrivals: list[float] = []
    url = f"{server.base_url}/v1/completions"
    async with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            now = time.perf_counter()
            arrivals.extend(itertools.repeat(now, chunk.count(b'"text":')))
    # The final chunk (finish_reason, empty text) is not a token.
    assert len(arrivals) == tokens + 1
    return arrivals[:tokens]


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=100), timeout=60)


def metrics(server: RunningServer) -> dict[str, float]:
    text = httpx.get(f"{server.base_url}/metrics").text
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values.setdefault(sample.name, sample.value)
    return values


def test_32_concurrent_decodes_see_the_batch_itl_and_share_steps(server: RunningServer) -> None:
    decodes = 32
    tokens = 60

    async def run() -> list[list[float]]:
        async with client() as http:
            return await asyncio.gather(*(stream(http, server, 1, tokens) for _ in range(decodes)))

    streams = asyncio.run(run())
    expected = BASE + decodes * PER_DECODE  # 11.4 ms
    # The window where all 32 decode: after every one's second token, before any one's last.
    start = max(arrivals[1] for arrivals in streams)
    end = min(arrivals[-1] for arrivals in streams)
    inside = [[t for t in arrivals if start <= t < end] for arrivals in streams]
    gaps = [b - a for arrivals in inside for a, b in itertools.pairwise(arrivals)]
    assert abs(statistics.median(gaps) - expected) <= 0.001, statistics.median(gaps)
    # The tokens of one step leave together: in arrival order, the window splits into bursts
    # (gaps of less than half a step inside, more between), each with one token per stream.
    everything = sorted((t, n) for n, arrivals in enumerate(inside) for t in arrivals)
    bursts: list[list[int]] = [[]]
    previous = everything[0][0]
    for t, n in everything:
        if t - previous > expected / 2:
            bursts.append([])
        bursts[-1].append(n)
        previous = t
    whole = bursts[1:-1]  # the window's edges may cut a burst
    assert len(whole) >= 40
    assert all(sorted(burst) == list(range(decodes)) for burst in whole)


def test_a_long_prompt_slows_the_decodes_beside_it_while_it_is_prefilled(
    server: RunningServer,
) -> None:
    decoders = 8
    prompt = 2000

    async def run() -> tuple[list[list[float]], float, list[float]]:
        async with client() as http:
            tasks = [asyncio.create_task(stream(http, server, 1, 120)) for _ in range(decoders)]
            await asyncio.sleep(0.15)
            sent = time.perf_counter()
            long = await stream(http, server, prompt, 2)
            return await asyncio.gather(*tasks), sent, long

    streams, sent, long = asyncio.run(run())
    decode_step = BASE + decoders * PER_DECODE  # 6.6 ms
    chunk = BUDGET - decoders
    mixed_step = BASE + decoders * PER_DECODE + chunk * PER_PREFILL  # 31.8 ms
    before = [b - a for a, b in itertools.pairwise(streams[0]) if b < sent]
    during = [b - a for a, b in itertools.pairwise(streams[0]) if sent + mixed_step < b < long[0]]
    assert abs(statistics.median(before) - decode_step) <= 0.001
    # One gap may absorb the few milliseconds the server spends reading the long request.
    assert abs(statistics.median(during) - mixed_step) <= 0.0015, during
    assert all(abs(gap - mixed_step) <= 0.005 for gap in during), during
    chunks = -(-prompt // chunk)  # 4 steps: 504 + 504 + 504 + 488 tokens
    ttft = long[0] - sent
    assert chunks * (mixed_step - 0.001) <= ttft <= (chunks + 1) * mixed_step + 0.005, ttft


def test_the_engine_loop_exports_vllm_metrics_and_ends_idle(server: RunningServer) -> None:
    values = metrics(server)
    assert values["vllm:iteration_tokens_total_count"] > 0
    assert values["vllm:iteration_tokens_total_sum"] >= 2000
    assert values["vllm:num_preemptions_total"] == 0
    assert values["vllm:num_requests_running"] == 0
    assert values["vllm:num_requests_waiting"] == 0


def test_a_full_kv_cache_preempts_and_every_request_still_completes(
    server_factory: ServerFactory,
) -> None:
    kv = (
        "kv-cache:\n  enable-kvcache: true\n  block-size: 16\n  kv-cache-size: 24\n"
        "  zmq-endpoint: ''\n"
    )
    small = server_factory(scenario(kv))

    async def run() -> list[list[float]]:
        async with client() as http:
            return await asyncio.gather(*(stream(http, small, 64, 100) for _ in range(4)))

    streams = asyncio.run(run())  # each needs 11 blocks of the 24: not all four at once
    assert [len(arrivals) for arrivals in streams] == [100] * 4
    values = metrics(small)
    assert values["vllm:num_preemptions_total"] > 0
    assert values["vllm:kv_cache_usage_perc"] == 0
    assert values["vllm:num_requests_running"] == 0


def test_a_scripted_stall_holds_tokens_back_and_delivers_them_together(
    server_factory: ServerFactory,
) -> None:
    stall = 0.3
    rules = (
        "rules:\n  - when: {prompt-matches: '.'}\n"
        f"    stream: {{stall-after-tokens: 3, stall: {int(stall * 1000)}ms}}\n"
    )
    stalled = server_factory(scenario(rules))

    async def run() -> list[float]:
        async with client() as http:
            return await stream(http, stalled, 1, 120)

    arrivals = asyncio.run(run())
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    step = BASE + PER_DECODE
    assert stall - 0.002 <= gaps[2] <= stall + step + 0.005, gaps[2]
    held = int(stall / step) - 3  # tokens emitted during the stall leave in one burst
    assert all(gap < 0.002 for gap in gaps[3 : 3 + held]), gaps[3 : 3 + held]
    assert abs(statistics.median(gaps[-10:]) - step) <= 0.001


def test_request_overheads_delay_the_queue_entry_and_every_visible_token(
    server_factory: ServerFactory,
) -> None:
    # BLIS's alpha: the request enters the queue base + per-input-token x prompt after it
    # arrives; token k is visible (k + 1) x per-output-token after its step.
    overhead = "  request-overhead: {base: 40ms, per-input-token: 100us, per-output-token: 2ms}\n"
    slowed = server_factory(scenario(overhead))
    prompt = 100

    async def run() -> tuple[float, list[float]]:
        async with client() as http:
            sent = time.perf_counter()
            return sent, await stream(http, slowed, prompt, 30)

    sent, arrivals = asyncio.run(run())
    entry = 0.040 + prompt * 0.0001
    prefill = BASE + prompt * PER_PREFILL
    ttft = arrivals[0] - sent
    assert entry + prefill + 0.002 <= ttft <= entry + prefill + 0.002 + 0.008, ttft
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert abs(statistics.median(gaps) - (BASE + PER_DECODE + 0.002)) <= 0.001


def test_time_scale_shrinks_every_step(server_factory: ServerFactory) -> None:
    fast = server_factory(scenario("server: {time-scale: 0.5}\n"))

    async def run() -> list[float]:
        async with client() as http:
            return await stream(http, fast, 1, 60)

    gaps = [b - a for a, b in itertools.pairwise(asyncio.run(run()))]
    assert abs(statistics.median(gaps) - 0.5 * (BASE + PER_DECODE)) <= 0.0005
