"""Running a real llmsim server in a subprocess for tests and scripts: ``start``, ``serve`` and
the ``SimulatorHandle`` they return.

A scenario (a file, a dict or YAML text, or nothing for the built-in default) is handed to
``python -m llmsim run`` on a free loopback port; the handle reaches the server over HTTP with the
standard library only (no proxy), so importing this module stays cheap and needs no test
dependencies. It must not import the server, the engine or pytest: the simulator runs in its own
process, exactly as it would be deployed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Protocol, TypeAlias

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

ScenarioSource: TypeAlias = str | os.PathLike[str] | Mapping[str, Any] | None
"""A scenario file path, the scenario as data, YAML text, or ``None`` for the built-in default."""

_PORT_ATTEMPTS = 3
_STOP_TIMEOUT = 10.0
# Never route loopback requests through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SimulatorStartError(RuntimeError):
    """The simulator exited or did not answer ``/health`` in time; the message has its stderr."""


class AdminConfigError(RuntimeError):
    """``POST /admin/config`` was rejected; ``status`` and ``message`` are the server's answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"POST /admin/config was rejected ({status}): {message}")
        self.status = status
        self.message = message


class SimulatorHandle:
    """A running simulator process and where to reach it. Use ``stop()`` (or a ``with`` block)
    to end it; stopping twice is harmless."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        port: int,
        scenario_path: Path | None,
        stderr: IO[bytes],
        scratch: Path | None,
    ) -> None:
        self.process = process
        self.port = port
        self.scenario_path = scenario_path
        self._stderr = stderr
        self._scratch = scratch

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<SimulatorHandle {self.base_url} pid={self.pid} {state}>"

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The OpenAI-compatible API root, ``http://127.0.0.1:PORT/v1``."""
        return f"{self.base_url}/v1"

    @property
    def pid(self) -> int:
        """The simulator's process id."""
        return self.process.pid

    @property
    def running(self) -> bool:
        """Whether the simulator process is still alive."""
        return self.process.poll() is None

    def metrics(self) -> dict[str, Metric]:
        """``/metrics`` parsed by prometheus_client, as family name -> ``Metric``. Counter
        families are named without ``_total`` (``vllm:request_success``); their samples keep
        it."""
        from prometheus_client.parser import text_string_to_metric_families

        text = self._request("GET", "/metrics").decode()
        return {family.name: family for family in text_string_to_metric_families(text)}

    def config(self) -> dict[str, Any]:
        """``GET /admin/config``: the configuration in force, with upstream's flat key names."""
        return _json_object(self._request("GET", "/admin/config"))

    def update_config(self, updates: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /admin/config`` with ``updates`` (flat keys such as ``time-to-first-token``,
        see docs/admin.md) and return the new configuration. A rejected update changes nothing
        and raises ``AdminConfigError`` with the server's message."""
        body = json.dumps(dict(updates)).encode()
        try:
            answer = self._request("POST", "/admin/config", body)
        except urllib.error.HTTPError as exc:
            raise AdminConfigError(exc.code, _error_message(exc.read())) from None
        return _json_object(answer)

    def stop(self) -> None:
        """Terminate the simulator (kill it if it has not exited within 10 s) and remove its
        temporary scenario file."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stderr.close()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> SimulatorHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=body, headers=headers, method=method
        )
        with _OPENER.open(request, timeout=30) as response:
            data: bytes = response.read()
            return data

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")


def start(
    scenario: ScenarioSource = None,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> SimulatorHandle:
    """Start a simulator serving ``scenario`` on a free loopback port and wait until ``/health``
    answers. ``scenario`` is a path (str or ``Path``, .yaml/.yml/.toml), a dict (the scenario as
    data), YAML text (a string with a newline or starting with ``version:``; dedented) or
    ``None`` (the built-in default). ``args`` are extra ``llmsim run`` arguments
    (``--set KEY=VALUE``, upstream flags), ``env`` extra environment variables. The caller must
    ``stop()`` it."""
    scratch: Path | None = None
    path: Path | None
    if scenario is None:
        path = None
    elif isinstance(scenario, Mapping):
        scratch = Path(tempfile.mkdtemp(prefix="llmsim-"))
        path = scratch / "scenario.yaml"
        path.write_text(json.dumps(scenario, indent=2), encoding="utf-8")  # JSON is YAML
    elif isinstance(scenario, str) and _is_yaml_text(scenario):
        scratch = Path(tempfile.mkdtemp(prefix="llmsim-"))
        path = scratch / "scenario.yaml"
        path.write_text(textwrap.dedent(scenario), encoding="utf-8")
    elif isinstance(scenario, str | os.PathLike):
        path = Path(scenario).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"scenario file not found: {path}")
    else:
        raise TypeError(f"a scenario is a path, a dict or YAML text, not {type(scenario)!r}")
    try:
        for _ in range(_PORT_ATTEMPTS - 1):
            try:
                return _launch(path, scratch, args, env, timeout)
            except _PortTaken:
                continue  # another process took the port we chose: choose again
        try:
            return _launch(path, scratch, args, env, timeout)
        except _PortTaken:
            raise SimulatorStartError("no free port found for the simulator") from None
    except BaseException:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        raise


@contextmanager
def serve(
    scenario: ScenarioSource = None,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Iterator[SimulatorHandle]:
    """``with serve(scenario) as sim:`` — a simulator (see ``start``) for the block, stopped
    when it ends, however it ends."""
    handle = start(scenario, args=args, env=env, timeout=timeout)
    try:
        yield handle
    finally:
        handle.stop()


class SimulatorFactory(Protocol):
    """What the ``llmsim_server`` fixture gives a test: call it to start a simulator."""

    def __call__(
        self,
        scenario: ScenarioSource = None,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> SimulatorHandle:
        """Start a simulator serving ``scenario``; see ``llmsim.testing.start``."""
        ...


class _PortTaken(Exception):
    """The free port was taken between choosing it and binding it."""


def _is_yaml_text(text: str) -> bool:
    return "\n" in text or text.lstrip().startswith("version:")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(
    path: Path | None,
    scratch: Path | None,
    args: Sequence[str],
    env: Mapping[str, str] | None,
    timeout: float,
) -> SimulatorHandle:
    port = _free_port()
    command = [sys.executable, "-m", "llmsim", "run"]
    if path is not None:
        command.append(str(path))
    command += ["--host", "127.0.0.1", "--port", str(port), *args]
    # stderr goes to a file, not a pipe: a chatty server must never block on a full pipe.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115 - the handle owns it and closes it on stop
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    except BaseException:
        stderr.close()
        raise
    handle = SimulatorHandle(process, port, path, stderr, scratch)
    try:
        _wait_healthy(handle, timeout)
    except BaseException:
        # keep the scenario file: start() removes it once it stops retrying
        handle._scratch = None
        handle.stop()
        raise
    return handle


def _wait_healthy(handle: SimulatorHandle, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            error = handle._stderr_text()
            if "address already in use" in error.lower():
                raise _PortTaken
            raise SimulatorStartError(
                f"llmsim exited with {handle.process.returncode} before answering /health:\n{error}"
            )
        try:
            with _OPENER.open(f"{handle.base_url}/health", timeout=0.5) as response:
                if response.status == 200:
                    return
        except OSError:  # URLError, HTTPError, connection refused, timeouts
            pass
        time.sleep(0.05)
    raise SimulatorStartError(
        f"llmsim did not answer /health within {timeout} s:\n{handle._stderr_text()}"
    )


def _json_object(body: bytes) -> dict[str, Any]:
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {body[:200]!r}")
    return value


def _error_message(body: bytes) -> str:
    """The ``error.message`` of an OpenAI-shaped error body, else the body itself."""
    try:
        value = json.loads(body)
    except ValueError:
        return body.decode(errors="replace")
    if isinstance(value, dict):
        error = value.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(value.get("detail"), str):
            return str(value["detail"])
    return body.decode(errors="replace")
