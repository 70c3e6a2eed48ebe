"""``make bench``: llmsim beside a bare ASGI floor app, same machine, same run, one table.

For each of the two servers: non-streaming zero-latency throughput with wrk; N concurrent
streams (default 100, 500, 1000) of 50 tokens at TTFT 100 ms / ITL 10 ms with p50/p99
inter-token error, p99 TTFT error, delivered tokens/s and server CPU; cold start to the first
``/health`` answer; RSS idle and with 1000 open streams. Every row prints llmsim/floor, and
the targets of issue 12 are checked at the end. Usage: ``python bench/run.py [--help]``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import Server
from streams import StreamFigures, figures, hold_streams, run_streams
from throughput import Throughput, run_wrk

TARGETS = ("floor", "llmsim")
STREAM_TARGETS = (*TARGETS, "batched")
"""The streaming part also runs llmsim's batched engine, every step as long as the ITL."""
STREAM_MEASURES: tuple[tuple[str, str, Callable[[StreamFigures], float]], ...] = (
    ("complete", "count", lambda f: f.complete),
    ("inter-token error p50", "ms", lambda f: f.itl_p50 * 1000),
    ("inter-token error p99", "ms", lambda f: f.itl_p99 * 1000),
    ("TTFT error p99", "ms", lambda f: f.ttft_p99 * 1000),
    ("delivered tokens", "tok/s", lambda f: f.tokens_per_s),
)
"""Per-count streaming rows: each the median over the rounds."""
MB = 1024 * 1024


@dataclass
class Row:
    """One measured quantity, by server."""

    label: str
    unit: str
    values: dict[str, float] = field(default_factory=dict)

    def ratio(self) -> float:
        floor = self.values["floor"]
        return self.values["llmsim"] / floor if floor else float("nan")


class Table:
    """Rows in the order they were measured, looked up by label for the checks."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}

    def put(self, label: str, unit: str, *, target: str, value: float) -> None:
        self.rows.setdefault(label, Row(label, unit)).values[target] = value

    def __getitem__(self, label: str) -> Row:
        return self.rows[label]

    def print(self) -> None:
        names = " ".join(f"{t:>11}" for t in STREAM_TARGETS)
        print(f"\n{'measure':<38} {'unit':>6} {names} {'llmsim/floor':>13}")
        for row in self.rows.values():
            cells = " ".join(f"{row.values.get(t, float('nan')):>11,.2f}" for t in STREAM_TARGETS)
            print(f"{row.label:<38} {row.unit:>6} {cells} {row.ratio():>13.2f}")


def measure_throughput(table: Table, args: argparse.Namespace) -> None:
    label = f"non-streaming, {args.connections} connections"
    servers = {t: Server.start(t) for t in TARGETS}
    try:
        results: dict[str, list[Throughput]] = {t: [] for t in TARGETS}
        for server in servers.values():
            run_wrk(server.port, args.connections, 1)  # warm-up
        for _ in range(args.rounds):
            for target, server in servers.items():
                results[target].append(run_wrk(server.port, args.connections, args.wrk_seconds))
        for target, runs in results.items():
            put = functools.partial(table.put, target=target)
            put(f"{label}: throughput", "req/s", value=median(r.requests_per_s for r in runs))
            put(f"{label}: p99 latency", "ms", value=median(r.p99 * 1000 for r in runs))
            put(f"{label}: errors", "count", value=sum(r.errors for r in runs))
    finally:
        for server in servers.values():
            server.stop()


def measure_streaming(table: Table, args: argparse.Namespace) -> None:
    ttft, itl = args.ttft_ms / 1000, args.itl_ms / 1000
    servers = {t: Server.start(t, args.ttft_ms, args.itl_ms) for t in STREAM_TARGETS}
    try:
        for server in servers.values():  # warm-up: the first round of a fresh process is noisy
            uvloop.run(run_streams(server.port, min(args.streams), args.tokens, args.ramp_s))
        for count in args.streams:
            runs: dict[str, list[tuple[StreamFigures, float]]] = {t: [] for t in STREAM_TARGETS}
            for _ in range(args.rounds):
                for target, server in servers.items():
                    cpu = server.cpu_seconds()
                    streams, elapsed = uvloop.run(
                        run_streams(server.port, count, args.tokens, args.ramp_s)
                    )
                    cpu_share = (server.cpu_seconds() - cpu) / elapsed * 100
                    runs[target].append(
                        (figures(streams, elapsed, ttft, itl, args.tokens), cpu_share)
                    )
            for target, measured in runs.items():
                for name, unit, value in STREAM_MEASURES:
                    got = median(value(f) for f, _ in measured)
                    table.put(f"{count} streams: {name}", unit, target=target, value=got)
                cpu_share = median(c for _, c in measured)
                table.put(f"{count} streams: server CPU", "%", target=target, value=cpu_share)
    finally:
        for server in servers.values():
            server.stop()


def measure_start_and_memory(table: Table, args: argparse.Namespace) -> None:
    for target in TARGETS:
        starts = []
        for _ in range(args.starts):
            with Server.start(target) as server:
                starts.append(server.cold_start)
        table.put("cold start to first /health", "s", target=target, value=median(starts))
        with Server.start(target, 100.0, 1000.0) as server:
            idle = server.rss_bytes()
            held: list[int] = []

            async def sample(server: Server = server, held: list[int] = held) -> None:
                await asyncio.sleep(0.5)
                held.append(server.rss_bytes())

            uvloop.run(hold_streams(server.port, args.open_streams, 60, sample))
        table.put("RSS idle", "MB", target=target, value=idle / MB)
        label = f"RSS with {args.open_streams} open streams"
        table.put(label, "MB", target=target, value=held[0] / MB)


@dataclass
class Check:
    """One done-when target of issue 12."""

    text: str
    holds: Callable[[Table], bool]


def checks(args: argparse.Namespace) -> list[Check]:
    """The targets, phrased over the table's rows."""
    found: list[Check] = [
        Check(
            "non-streaming throughput >= 0.5 x floor (stretch 0.7 x)",
            lambda t: (
                t[f"non-streaming, {args.connections} connections: throughput"].ratio() >= 0.5
            ),
        ),
        Check(
            "cold start <= 1.5 s",
            lambda t: t["cold start to first /health"].values["llmsim"] <= 1.5,
        ),
        Check(
            f"RSS <= 150 MB with {args.open_streams} open streams",
            lambda t: t[f"RSS with {args.open_streams} open streams"].values["llmsim"] <= 150,
        ),
    ]
    if 500 in args.streams:
        found += [
            Check(
                "500 streams: p99 inter-token error <= 1.5 x floor and <= 3 ms",
                lambda t: (
                    t["500 streams: inter-token error p99"].ratio() <= 1.5
                    and t["500 streams: inter-token error p99"].values["llmsim"] <= 3
                ),
            ),
            Check(
                "500 streams: server CPU <= 1.3 x floor",
                lambda t: t["500 streams: server CPU"].ratio() <= 1.3,
            ),
        ]
    if 1000 in args.streams:
        found += [
            Check(
                "1000 streams: p99 inter-token error <= 1.3 x floor",
                lambda t: t["1000 streams: inter-token error p99"].ratio() <= 1.3,
            ),
            Check(
                "1000 streams, batched engine: server CPU <= per-request mode's",
                lambda t: (
                    t["1000 streams: server CPU"].values["batched"]
                    <= t["1000 streams: server CPU"].values["llmsim"]
                ),
            ),
        ]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["throughput", "streaming", "start"],
                        choices=["throughput", "streaming", "start"])  # fmt: skip
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--wrk-seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds; the table shows each median")  # fmt: skip
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--itl-ms", type=float, default=10.0)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument("--ramp-s", type=float, default=0.5,
                        help="spread the stream starts evenly over this many seconds")  # fmt: skip
    parser.add_argument("--starts", type=int, default=3, help="cold starts to take the median of")
    parser.add_argument("--open-streams", type=int, default=1000)
    parser.add_argument("--check-args", action="store_true",
                        help="check the arguments, print what would run, exit")  # fmt: skip
    args = parser.parse_args()
    if args.check_args:
        print(f"would measure {', '.join(args.parts)}: {vars(args)}")
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    print(
        f"llmsim vs the floor (bench/floor_app.py) on {os.cpu_count()} cores, client on the "
        f"same machine; streams: {args.tokens} tokens, TTFT {args.ttft_ms:g} ms, "
        f"ITL {args.itl_ms:g} ms, starts spread over {args.ramp_s:g} s; 'batched' is llmsim's "
        "engine loop with every step one ITL long (its TTFT is a queue wait plus one step, not "
        "the configured TTFT)"
    )
    table = Table()
    parts = {
        "throughput": measure_throughput,
        "streaming": measure_streaming,
        "start": measure_start_and_memory,
    }
    for name in args.parts:
        parts[name](table, args)
    table.print()
    print()
    for check in checks(args):
        try:
            verdict = "pass" if check.holds(table) else "FAIL"
        except KeyError:
            verdict = "not measured"
        print(f"{verdict:>12}  {check.text}")


if __name__ == "__main__":
    main()
