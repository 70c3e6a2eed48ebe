"""Starting the servers under test — llmsim and the floor app — and reading their process.

Both are started the way users start them (a fresh interpreter, loopback, access log off) and
are ready when ``GET /health`` answers 200; the time from spawn to that answer is the cold start.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEALTH = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(HEALTH)
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def llmsim_command(port: int, ttft_ms: float, itl_ms: float) -> list[str]:
    """``llmsim run`` on a scenario with the given latency and room for every stream."""
    return _llmsim(
        port,
        "engine: {max-num-seqs: 4096}\n"
        f"latency: {{time-to-first-token: {ttft_ms}ms, inter-token-latency: {itl_ms}ms}}\n",
    )


def batched_command(port: int, ttft_ms: float, itl_ms: float) -> list[str]:
    """``llmsim run`` in batched mode, every step ``itl_ms`` whatever is in it (so the ITL is
    the same as the per-request run's and only the engine loop differs; TTFT is ignored)."""
    return _llmsim(
        port,
        "engine: {mode: batched, max-num-seqs: 4096, max-num-batched-tokens: 65536,"
        f" step-time: {{base: {itl_ms}ms, per-prefill-token: 0s, per-decode-token: 0s}}}}\n",
    )


def _llmsim(port: int, timing: str) -> list[str]:
    scenario = f"version: 1\nseed: 1\nmodel: {{name: bench, max-model-len: 8192}}\n{timing}"
    handle, name = tempfile.mkstemp(prefix="llmsim-bench-", suffix=".yaml")
    os.close(handle)
    Path(name).write_text(scenario)
    return [sys.executable, "-m", "llmsim", "run", name, "--host", "127.0.0.1", "--port", str(port)]


def floor_command(port: int, ttft_ms: float, itl_ms: float) -> list[str]:
    """The bare ASGI reference app with the same latency."""
    script = str(ROOT / "bench" / "floor_app.py")
    timing = ["--ttft-ms", str(ttft_ms), "--itl-ms", str(itl_ms)]
    return [sys.executable, script, "--port", str(port), *timing]


COMMANDS = {"floor": floor_command, "llmsim": llmsim_command, "batched": batched_command}


@dataclass
class Server:
    """One running server process and what it cost to start."""

    process: subprocess.Popen[bytes]
    port: int
    cold_start: float

    @classmethod
    def start(cls, target: str, ttft_ms: float = 0.0, itl_ms: float = 0.0) -> Server:
        """Spawn ``target`` ("floor" or "llmsim") and wait for its first healthy answer."""
        port = free_port()
        command = COMMANDS[target](port, ttft_ms, itl_ms)
        began = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = began + 30
        while time.perf_counter() < deadline:
            if _healthy(port):
                return cls(process, port, time.perf_counter() - began)
            if process.poll() is not None:
                break
            time.sleep(0.005)
        process.kill()
        raise SystemExit(f"{target} did not start: {' '.join(command)}")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_bytes(self) -> int:
        """The server's resident set size now."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def stop(self) -> None:
        """SIGTERM, then wait for the process to exit."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
