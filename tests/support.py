"""Starting a real llmsim server in a subprocess on a free loopback port, for tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive TCP ports that were all free on 127.0.0.1 a moment
    ago (data-parallel ranks serve on consecutive ports)."""
    while True:
        first = free_port()
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()


@dataclass
class RunningServer:
    """A simulator process and where to reach it."""

    process: subprocess.Popen[bytes]
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    scenario: Path | None,
    args: Sequence[str] = (),
    timeout: float = 15.0,
    env: Mapping[str, str] | None = None,
) -> RunningServer:
    """Run ``llmsim run`` on a free port and wait until ``/health`` answers."""
    port = free_port()
    command = [sys.executable, "-m", "llmsim", "run"]
    if scenario is not None:
        command.append(str(scenario))
    command += ["--host", "127.0.0.1", "--port", str(port), *args]
    return _launch("llmsim", command, port, timeout, env)


def _launch(
    name: str, command: list[str], port: int, timeout: float, env: Mapping[str, str] | None
) -> RunningServer:
    """Start ``command`` (a server on ``port``) and wait until ``/health`` answers; an exit
    or a timeout raises with ``name`` and the server's stderr."""
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    server = RunningServer(process, port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{error}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=0.5).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{name} did not answer /health within {timeout} s")


async def drain_stream(client: httpx.AsyncClient, path: str, payload: dict[str, object]) -> None:
    """POST a streamed request and read its answer to the end (or until cancelled)."""
    async with client.stream("POST", path, json=payload) as response:
        async for _ in response.aiter_bytes():
            pass


def upstream_script() -> Path:
    """The ``llm-d-inference-sim`` console script, installed next to the interpreter."""
    return Path(sys.executable).parent / "llm-d-inference-sim"


def start_upstream_server(
    args: Sequence[str], timeout: float = 15.0, env: Mapping[str, str] | None = None
) -> RunningServer:
    """Run ``llm-d-inference-sim`` with ``args`` (``{port}`` in an argument becomes a free
    port) and wait until ``/health`` answers."""
    port = free_port()
    command = [str(upstream_script()), *(arg.replace("{port}", str(port)) for arg in args)]
    return _launch("llm-d-inference-sim", command, port, timeout, env)


@contextmanager
def run_prometheus(binary: str, config: Path, folder: Path) -> Iterator[str]:
    """A real Prometheus scraping as ``config`` says, its data in ``folder``, on a free loopback
    port: its URL once ready; stopped on exit."""
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
