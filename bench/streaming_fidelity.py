"""Streaming fidelity: how close llmsim's token timing stays to the configuration under load.

Starts llmsim on a free loopback port with a fixed TTFT and ITL, opens N concurrent streaming
chat requests with a lean raw-socket client (uvloop), and prints, per N: p50/p99 of the
inter-token error |gap - ITL|, p50/p99 of the TTFT error, delivered tokens/s and the server's
CPU use. Usage: python bench/streaming_fidelity.py [--streams 100 1000 2000] [--itl-ms 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
CONTENT = b'{"content":'
END = b"0\r\n\r\n"


@dataclass
class Stream:
    sent: float = 0.0
    arrivals: list[float] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, ttft_ms: float, itl_ms: float, streams: int) -> subprocess.Popen[bytes]:
    scenario = (
        "version: 1\nseed: 1\nmodel: {name: bench, max-model-len: 4096}\n"
        f"engine: {{max-num-seqs: {streams}}}\n"
        f"latency: {{time-to-first-token: {ttft_ms}ms, inter-token-latency: {itl_ms}ms}}\n"
    )
    path = Path(tempfile.mkstemp(suffix=".yaml")[1])
    path.write_text(scenario)
    command = [sys.executable, "-m", "llmsim", "run", str(path), "--host", "127.0.0.1"]
    process = subprocess.Popen(
        [*command, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("llmsim did not start")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request_bytes(tokens: int) -> bytes:
    body = json.dumps(
        {
            "model": "bench",
            "messages": [{"role": "user", "content": "Stream please."}],
            "max_tokens": tokens,
            "ignore_eos": True,
            "stream": True,
        }
    ).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


async def run_stream(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    payload: bytes,
    stream: Stream,
    start_at: float,
) -> None:
    delay = start_at - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    stream.sent = time.perf_counter()
    writer.write(payload)
    arrivals = stream.arrivals
    while True:
        data = await reader.read(65536)
        if not data:
            return
        now = time.perf_counter()
        arrivals.extend([now] * data.count(CONTENT))
        if data.endswith(END):
            return


async def measure(port: int, streams: int, tokens: int, ramp: float) -> tuple[list[Stream], float]:
    connections = []
    for start in range(0, streams, 200):
        batch = [
            asyncio.open_connection("127.0.0.1", port)
            for _ in range(start, min(streams, start + 200))
        ]
        connections += await asyncio.gather(*batch)
    payload = request_bytes(tokens)
    results = [Stream() for _ in range(streams)]
    began = time.perf_counter()
    await asyncio.gather(
        *(
            run_stream(r, w, payload, s, began + ramp * index / streams)
            for index, ((r, w), s) in enumerate(zip(connections, results, strict=True))
        )
    )
    elapsed = time.perf_counter() - began
    for _, writer in connections:
        writer.close()
    return results, elapsed


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def report(
    streams: list[Stream], elapsed: float, ttft: float, itl: float, tokens: int, cpu: float
) -> str:
    complete = [s for s in streams if len(s.arrivals) == tokens]
    gap_errors = [
        abs((b - a) - itl)
        for s in complete
        for a, b in zip(s.arrivals, s.arrivals[1:], strict=False)
    ]
    ttft_errors = [abs(s.arrivals[0] - s.sent - ttft) for s in complete]
    delivered = sum(len(s.arrivals) for s in streams)
    figures = [
        percentile(gap_errors, 0.5),
        percentile(gap_errors, 0.99),
        statistics.median(ttft_errors),
        percentile(ttft_errors, 0.99),
    ]
    milliseconds = " ".join(f"{value * 1000:>9.2f}" for value in figures)
    return (
        f"{len(streams):>7} {len(complete):>8} {milliseconds} "
        f"{delivered / elapsed:>10.0f} {cpu / elapsed * 100:>7.0f}%"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[100, 1000, 2000])
    parser.add_argument("--ttft-ms", type=float, default=100.0)
    parser.add_argument("--itl-ms", type=float, default=10.0)
    parser.add_argument("--tokens", type=int, default=50)
    parser.add_argument(
        "--ramp-s",
        type=float,
        nargs="+",
        default=[0.0, 1.0],
        help="spread the stream starts evenly over this many seconds (0: one burst)",
    )
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    ttft, itl = args.ttft_ms / 1000, args.itl_ms / 1000
    print(
        f"streaming fidelity: TTFT {args.ttft_ms:g} ms, ITL {args.itl_ms:g} ms, "
        f"{args.tokens} tokens per stream, client and server on this machine "
        f"({os.cpu_count()} cores)"
    )
    print(
        " ramp-s streams complete  itl-p50ms itl-p99ms ttft-p50ms ttft-p99ms   tokens/s  server-cpu"
    )
    for ramp in args.ramp_s:
        for count in args.streams:
            port = free_port()
            server = start_server(port, args.ttft_ms, args.itl_ms, count)
            try:
                cpu_before = cpu_seconds(server.pid)
                results, elapsed = uvloop.run(measure(port, count, args.tokens, ramp))
                cpu = cpu_seconds(server.pid) - cpu_before
                line = report(results, elapsed, ttft, itl, args.tokens, cpu)
                print(f"{ramp:>7g}{line}", flush=True)
            finally:
                server.terminate()
                server.wait(timeout=10)
    print(
        "errors are absolute: |measured - configured|, per token gap and per stream TTFT; "
        "ramp 0 starts every stream at once"
    )


if __name__ == "__main__":
    main()
