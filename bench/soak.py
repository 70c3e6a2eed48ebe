"""A bounded soak run: one llmsim on loopback under a mixed workload, then leaks and leftovers.

Starts one llmsim (a small engine so that requests queue and some are refused with 429, the
prefix cache on), drives ``--concurrency`` worker loops of mixed requests for ``--seconds``
(at most ``--max-requests`` requests), and reports the server's RSS after ``--warmup-seconds``
and at the end with its growth, a short RSS timeline, the requests by kind and by status, and
the gauges of ``/metrics`` once the load has stopped and settled (running, waiting and KV-cache
usage: all must read 0).

The mix: chat completions (whole and streamed to ``[DONE]``), streamed completions the client
drops after a few chunks, completions with ``n: 3``, bad requests (invalid JSON, unknown model:
a 4xx is expected), ``/v1/models``, ``/metrics`` and ``/tokenize``.

Exits non-zero on any 5xx or transport error, on an answer a kind does not expect (a 4xx other
than 429 to a good request, a 2xx to a bad one, a stream without ``[DONE]``), on a traceback in
the server's log, on a gauge that is not 0 at the end, or when RSS grew more than
``--max-rss-growth`` percent after the warm-up. Usage: ``python bench/soak.py [--help]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import ROOT, Server, free_port

MODEL = "bench"
MB = 1024 * 1024
GAUGES = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")
ALPHABET = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november"
    " oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
)
WORDS = ALPHABET.split()
SYSTEM = " ".join(WORDS + WORDS)
"""A shared system prompt: requests share its KV blocks."""
STATUS_CLASSES = ("2xx", "4xx", "429", "5xx", "transport")


# --- the server ------------------------------------------------------------------------------


def scenario_text(args: argparse.Namespace) -> str:
    """A small engine (so requests wait and some get 429) with the prefix cache on."""
    return (
        f"version: 1\nseed: 1\nmodel: {{name: {MODEL}, max-model-len: 8192}}\n"
        f"engine: {{max-num-seqs: {args.max_num_seqs},"
        f" max-waiting-queue-length: {args.max_waiting}}}\n"
        f"latency: {{time-to-first-token: {args.ttft_ms}ms,"
        f" inter-token-latency: {args.itl_ms}ms}}\n"
        f"kv-cache: {{enable-kvcache: {str(args.kv_cache).lower()},"
        f" kv-cache-size: {args.kv_blocks}, block-size: 16, zmq-endpoint: ''}}\n"
    )


def start_server(scenario: Path, log: Path) -> Server:
    """``llmsim run`` on ``scenario`` with stderr to ``log``; ready at its first 200 /health."""
    port = free_port()
    command = [sys.executable, "-m", "llmsim", "run", str(scenario)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    began = time.perf_counter()
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    deadline = began + 30
    while time.perf_counter() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                return Server(process, port, time.perf_counter() - began)
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    process.kill()
    process.wait()
    raise SystemExit(f"llmsim did not start: {' '.join(command)}\n{log.read_text()[-2000:]}")


def gauges(text: str) -> dict[str, float]:
    """The soak's gauges in a ``/metrics`` exposition (summed over label sets)."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in GAUGES:
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


# --- the workload ----------------------------------------------------------------------------


class Unexpected(Exception):
    """An answer with an expected status whose body is not what the kind expects."""


@dataclass
class Tally:
    """Requests by kind and status class, and what was not as expected."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    unexpected: Counter[tuple[str, str]] = field(default_factory=Counter)
    issued: int = 0
    done: int = 0

    def record(self, kind: str, status: int | None, expected: bool, detail: str = "") -> None:
        self.done += 1
        if status is None:
            self.counts[kind, "transport"] += 1
        else:
            self.counts[kind, f"{status // 100}xx"] += 1
            if status == 429:
                self.counts[kind, "429"] += 1
        if not expected:
            self.unexpected[kind, detail or f"status {status}"] += 1


def prompt(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def messages(rng: random.Random) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": prompt(rng, rng.randint(8, 120))},
    ]


def good(status: int) -> bool:
    """A good request's acceptable answers: done, or refused because the queue is full."""
    return status in (200, 429)


async def read_stream(response: httpx.Response, keep: int | None = None) -> bool:
    """Read SSE lines; stop after ``keep`` data events. Whether ``[DONE]`` was seen."""
    events = 0
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        if line.strip() == "data: [DONE]":
            return True
        events += 1
        if keep is not None and events >= keep:
            return False
    return False


async def chat(client: httpx.AsyncClient, rng: random.Random) -> int:
    body = {"model": MODEL, "messages": messages(rng), "max_tokens": rng.randint(4, 48)}
    response = await client.post("/v1/chat/completions", json=body)
    if response.status_code == 200 and not response.json()["choices"]:
        raise Unexpected("no choices")
    return response.status_code


async def chat_stream(client: httpx.AsyncClient, rng: random.Random) -> int:
    body = {"model": MODEL, "messages": messages(rng), "max_tokens": rng.randint(4, 48)}
    body["stream"] = True
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
        elif not await read_stream(response):
            raise Unexpected("stream without [DONE]")
        return response.status_code


async def completion_dropped(client: httpx.AsyncClient, rng: random.Random) -> int:
    """A stream of 200 tokens the client closes after a few chunks."""
    body = {"model": MODEL, "prompt": prompt(rng, rng.randint(20, 200)), "max_tokens": 200}
    body["stream"] = True
    async with client.stream("POST", "/v1/completions", json=body) as response:
        if response.status_code != 200:
            await response.aread()
        else:
            await read_stream(response, keep=rng.randint(1, 5))
        return response.status_code


async def completion_n3(client: httpx.AsyncClient, rng: random.Random) -> int:
    body = {"model": MODEL, "prompt": prompt(rng, rng.randint(8, 80)), "max_tokens": 16, "n": 3}
    response = await client.post("/v1/completions", json=body)
    if response.status_code == 200 and len(response.json()["choices"]) != 3:
        raise Unexpected("n=3 without 3 choices")
    return response.status_code


async def bad_json(client: httpx.AsyncClient, rng: random.Random) -> int:
    headers = {"Content-Type": "application/json"}
    content = b'{"model": "bench", "messages": [{"role": "user", "content": "hi"'
    response = await client.post("/v1/chat/completions", content=content, headers=headers)
    return response.status_code


async def unknown_model(client: httpx.AsyncClient, rng: random.Random) -> int:
    body = {"model": "no-such-model", "messages": messages(rng), "max_tokens": 8}
    response = await client.post("/v1/chat/completions", json=body)
    return response.status_code


async def models(client: httpx.AsyncClient, rng: random.Random) -> int:
    response = await client.get("/v1/models")
    if response.status_code == 200 and response.json()["data"][0]["id"] != MODEL:
        raise Unexpected("model list without bench")
    return response.status_code


async def metrics(client: httpx.AsyncClient, rng: random.Random) -> int:
    response = await client.get("/metrics")
    if response.status_code == 200 and "vllm:num_requests_running" not in gauges(response.text):
        raise Unexpected("metrics without num_requests_running")
    return response.status_code


async def tokenize(client: httpx.AsyncClient, rng: random.Random) -> int:
    body = {"model": MODEL, "prompt": prompt(rng, rng.randint(4, 200))}
    response = await client.post("/tokenize", json=body)
    if response.status_code == 200 and not response.json()["tokens"]:
        raise Unexpected("no tokens")
    return response.status_code


@dataclass(frozen=True)
class Kind:
    name: str
    weight: int
    send: Callable[[httpx.AsyncClient, random.Random], Awaitable[int]]
    expect: Callable[[int], bool]


KINDS = (
    Kind("chat", 4, chat, good),
    Kind("chat stream", 4, chat_stream, good),
    Kind("completion dropped", 2, completion_dropped, good),
    Kind("completion n=3", 2, completion_n3, good),
    Kind("bad json", 1, bad_json, lambda status: status == 400),
    Kind("unknown model", 1, unknown_model, lambda status: status == 404),
    Kind("models", 1, models, lambda status: status == 200),
    Kind("metrics", 1, metrics, lambda status: status == 200),
    Kind("tokenize", 2, tokenize, lambda status: status == 200),
)


async def worker(
    client: httpx.AsyncClient, seed: int, stop_at: float, limit: int, tally: Tally
) -> None:
    rng = random.Random(seed)
    weights = [kind.weight for kind in KINDS]
    while time.monotonic() < stop_at and tally.issued < limit:
        tally.issued += 1
        kind = rng.choices(KINDS, weights)[0]
        try:
            status = await kind.send(client, rng)
        except Unexpected as exc:
            tally.record(kind.name, 200, False, str(exc))
        except httpx.HTTPError as exc:
            tally.record(kind.name, None, False, type(exc).__name__)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            tally.record(kind.name, 200, False, f"malformed body ({type(exc).__name__})")
        else:
            expected = kind.expect(status)
            tally.record(kind.name, status, expected and status < 500)


@dataclass
class Sample:
    at: float
    rss: int
    done: int
    running: float
    waiting: float


async def sampler(
    server: Server,
    client: httpx.AsyncClient,
    tally: Tally,
    began: float,
    every: float,
    out: list[Sample],
) -> None:
    """RSS, requests done and the running/waiting gauges every ``every`` seconds."""
    while True:
        values: dict[str, float] = {}
        with contextlib.suppress(httpx.HTTPError):
            values = gauges((await client.get("/metrics")).text)
        out.append(
            Sample(
                time.monotonic() - began,
                server.rss_bytes(),
                tally.done,
                values.get(GAUGES[0], float("nan")),
                values.get(GAUGES[1], float("nan")),
            )
        )
        await asyncio.sleep(every)


@dataclass
class Result:
    tally: Tally
    timeline: list[Sample]
    rss_start: int
    rss_load_end: int
    rss_settled: int
    load_seconds: float
    gauges: dict[str, float]
    late_gauges: str
    server_cpu: float


async def soak(server: Server, args: argparse.Namespace) -> Result:
    tally = Tally()
    timeline: list[Sample] = []
    limits = httpx.Limits(max_connections=args.concurrency + 8, max_keepalive_connections=None)
    timeout = httpx.Timeout(args.request_timeout)
    base = f"http://127.0.0.1:{server.port}"
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        began = time.monotonic()
        stop_at = began + args.seconds
        sampling = asyncio.create_task(
            sampler(server, client, tally, began, args.sample_seconds, timeline)
        )
        workers = [
            asyncio.create_task(worker(client, args.seed + i, stop_at, args.max_requests, tally))
            for i in range(args.concurrency)
        ]
        await asyncio.sleep(min(args.warmup_seconds, args.seconds))
        rss_start = server.rss_bytes()
        await asyncio.gather(*workers)
        load_seconds = time.monotonic() - began
        rss_load_end = server.rss_bytes()
        sampling.cancel()
        nan = float("nan")
        timeline.append(Sample(load_seconds, rss_load_end, tally.done, nan, nan))
        await asyncio.sleep(args.settle_seconds)
        rss_settled = server.rss_bytes()
        values = gauges((await client.get("/metrics")).text)
        late = ""
        if any(values.values()):
            late = await watch_gauges(client, args.late_seconds)
    cpu = server.cpu_seconds()
    return Result(
        tally, timeline, rss_start, rss_load_end, rss_settled, load_seconds, values, late, cpu
    )


async def watch_gauges(client: httpx.AsyncClient, seconds: float) -> str:
    """For a report: whether (and when) gauges left above 0 drain within ``seconds``."""
    began = time.monotonic()
    values: dict[str, float] = {}
    while time.monotonic() - began < seconds:
        await asyncio.sleep(0.5)
        values = gauges((await client.get("/metrics")).text)
        if not any(values.values()):
            return f"gauges reached 0 {time.monotonic() - began:.1f} s later"
    return f"still not 0 {seconds:.0f} s later: {values}"


# --- the report ------------------------------------------------------------------------------


def server_problems(log: Path) -> list[str]:
    """Tracebacks and error lines in the server's output."""
    lines = log.read_text(errors="replace").splitlines()
    return [line for line in lines if "Traceback" in line or "ERROR" in line]


def report(result: Result, args: argparse.Namespace, log: Path) -> list[str]:
    """Print the tables; the reasons to fail."""
    tally = result.tally
    reasons: list[str] = []
    print(
        f"\nload {result.load_seconds:.1f} s, {tally.done} requests "
        f"({tally.done / result.load_seconds:.0f}/s), concurrency {args.concurrency}, "
        f"server CPU {result.server_cpu:.1f} s"
    )
    header = f"{'kind':<20}{'total':>8}" + "".join(f"{c:>10}" for c in STATUS_CLASSES)
    print(f"\n{header}\n{'-' * len(header)}")
    totals: Counter[str] = Counter()
    for kind in KINDS:
        row = [tally.counts[kind.name, c] for c in STATUS_CLASSES]
        total = sum(tally.counts[kind.name, c] for c in ("2xx", "4xx", "5xx", "transport"))
        totals.update(dict(zip(STATUS_CLASSES, row, strict=True)))
        totals["total"] += total
        print(f"{kind.name:<20}{total:>8}" + "".join(f"{n:>10}" for n in row))
    print(f"{'all':<20}{totals['total']:>8}" + "".join(f"{totals[c]:>10}" for c in STATUS_CLASSES))
    print("(429 is part of 4xx: a good request refused because the queue was full)")

    if tally.unexpected:
        print("\nunexpected answers:")
        for (kind_name, detail), count in sorted(tally.unexpected.items()):
            print(f"  {kind_name:<20}{detail:<40}{count:>8}")

    print(f"\nRSS timeline (every {args.sample_seconds:g} s):")
    print(f"  {'t (s)':>6}{'RSS MB':>9}{'requests':>10}{'running':>9}{'waiting':>9}")
    for sample in result.timeline:
        print(
            f"  {sample.at:>6.1f}{sample.rss / MB:>9.1f}{sample.done:>10}"
            f"{sample.running:>9.0f}{sample.waiting:>9.0f}"
        )

    growth_load = (result.rss_load_end - result.rss_start) / result.rss_start * 100
    growth_settled = (result.rss_settled - result.rss_start) / result.rss_start * 100
    print(f"\nRSS after warm-up ({args.warmup_seconds:g} s): {result.rss_start / MB:8.1f} MB")
    print(f"RSS at end of load:        {result.rss_load_end / MB:8.1f} MB ({growth_load:+.1f}%)")
    print(f"RSS after settle:          {result.rss_settled / MB:8.1f} MB ({growth_settled:+.1f}%)")

    print(f"\ngauges {args.settle_seconds:g} s after the load stopped:")
    for name in GAUGES:
        shown = f"{result.gauges[name]:g}" if name in result.gauges else "absent"
        print(f"  {name:<30}{shown:>10}")
    if result.late_gauges:
        print(f"  ({result.late_gauges})")

    problems = server_problems(log)
    if problems:
        print(f"\nserver log ({log}): {len(problems)} traceback/error lines, first ones:")
        for line in problems[:5]:
            print(f"  {line[:200]}")

    if totals["5xx"]:
        reasons.append(f"{totals['5xx']} 5xx")
    if totals["transport"]:
        reasons.append(f"{totals['transport']} transport errors")
    other = sum(tally.unexpected.values()) - totals["5xx"] - totals["transport"]
    if other:
        reasons.append(f"{other} unexpected answers")
    for name in GAUGES[:2]:
        if name not in result.gauges:
            reasons.append(f"{name} absent")
    reasons += [f"{name} = {value:g}" for name, value in result.gauges.items() if value]
    growth = max(growth_load, growth_settled)
    if growth > args.max_rss_growth:
        reasons.append(f"RSS grew {growth:.1f}% (> {args.max_rss_growth:g}%)")
    if any("Traceback" in line for line in problems):
        reasons.append("tracebacks in the server log")
    return reasons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--seconds", type=float, default=60.0, help="load duration, warm-up included")
    add("--warmup-seconds", type=float, default=10.0, help="then the start RSS is taken")
    add("--max-requests", type=int, default=1_000_000, help="cap on requests sent")
    add("--concurrency", type=int, default=64, help="worker loops (requests in flight)")
    add("--settle-seconds", type=float, default=2.0, help="idle time before the end gauges")
    add("--late-seconds", type=float, default=10.0, help="watch gauges left above 0 this long")
    add("--sample-seconds", type=float, default=5.0, help="RSS timeline interval")
    add("--max-rss-growth", type=float, default=10.0, help="percent allowed after warm-up")
    add("--request-timeout", type=float, default=30.0)
    add("--max-num-seqs", type=int, default=32, help="the engine's running slots")
    add("--max-waiting", type=int, default=16, help="its waiting queue (more get 429)")
    add("--kv-cache", action=argparse.BooleanOptionalAction, default=True)
    add("--kv-blocks", type=int, default=2048)
    add("--ttft-ms", type=float, default=20.0)
    add("--itl-ms", type=float, default=2.0)
    add("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.warmup_seconds >= args.seconds:
        parser.error("--warmup-seconds must be shorter than --seconds")

    handle, name = tempfile.mkstemp(prefix="llmsim-soak-", suffix=".yaml")
    os.close(handle)
    scenario = Path(name)
    scenario.write_text(scenario_text(args))
    log = scenario.with_suffix(".log")
    print(scenario_text(args), end="")
    try:
        with start_server(scenario, log) as server:
            print(
                f"llmsim pid {server.process.pid} on port {server.port}, "
                f"ready in {server.cold_start:.2f} s; soaking {args.seconds:g} s"
            )
            result = uvloop.run(soak(server, args))
        reasons = report(result, args, log)
    finally:
        scenario.unlink()
    if reasons:
        print(f"\nserver log kept: {log}")
    else:
        log.unlink()
    print("\nsoak: PASS" if not reasons else f"\nsoak: FAIL ({'; '.join(reasons)})")
    sys.exit(1 if reasons else 0)


if __name__ == "__main__":
    main()
