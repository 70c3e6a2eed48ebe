"""Non-streaming throughput with wrk: requests/s and p99 latency of a zero-latency chat call."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

BODY = '{"model":"bench","messages":[{"role":"user","content":"Hello there"}],"max_tokens":10}'
SCRIPT = (
    'wrk.method = "POST"\n'
    'wrk.headers["Content-Type"] = "application/json"\n'
    f"wrk.body = '{BODY}'\n"
)
UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass
class Throughput:
    """What wrk measured."""

    requests_per_s: float
    p99: float
    errors: int


def _seconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def parse_wrk(output: str) -> Throughput:
    """Requests/s, the p99 latency and the non-2xx plus socket error count from wrk --latency."""
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if rate is None or p99 is None:
        raise RuntimeError(f"wrk printed no figures:\n{output}")
    counts = re.findall(r"(?:Non-2xx or 3xx responses:|connect|read|write|timeout) (\d+)", output)
    return Throughput(float(rate.group(1)), _seconds(p99.group(1)), sum(map(int, counts)))


def run_wrk(port: int, connections: int, seconds: float) -> Throughput:
    """One wrk thread, ``connections`` keep-alive connections, POSTing the chat body."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk not found: install it (Debian: apt-get install wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(SCRIPT)
        script.flush()
        command = [
            wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency",
            "-s", script.name, f"http://127.0.0.1:{port}/v1/chat/completions",
        ]  # fmt: skip
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return parse_wrk(output)
