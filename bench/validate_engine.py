"""The batched engine against real vLLM: calibrate on a recorded run, serve the fitted profile,
replay the run against it and print recorded vs measured TTFT, ITL and E2E.

    .venv/bin/python bench/validate_engine.py ../shared/data/vllm-ground-truth/jan21-llama7b-train-1

Steps, all with llmsim's own commands: ``llmsim calibrate RUN -o profile.yaml`` (engine settings
from the run's exp-config.yaml / vllm.log), a batched scenario with that profile, the run's
max-num-seqs and its KV cache (the number of GPU blocks its log reports), ``llmsim run`` on a
loopback port, ``llmsim replay RUN --json``. ``--time-scale`` runs the server that many times
faster and scales the arrivals to match (the replay divides the latencies back).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LLMSIM = [sys.executable, "-m", "llmsim"]
BLOCK = 16


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def calibrate(run: Path, profile: Path) -> dict[str, object]:
    """Fit the run; the calibration's JSON (coefficients, engine settings, fit quality)."""
    command = [*LLMSIM, "calibrate", str(run), "-o", str(profile), "--json"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    found: dict[str, object] = json.loads(result.stdout)
    return found


def scenario(profile: Path, calibration: dict[str, object], time_scale: float) -> str:
    """A batched scenario on the fitted profile, with the traced server's limits."""
    engine = calibration["engine"]
    assert isinstance(engine, dict)
    lines = [
        "version: 1",
        "seed: 1",
        "model: {name: traced, max-model-len: 32768}",
        f"server: {{time-scale: {time_scale}}}",
        f"engine: {{mode: batched, max-num-seqs: {engine['max_num_seqs']}, profile: {profile}}}",
    ]
    kv_tokens = calibration.get("kv_cache_tokens")
    if kv_tokens:
        lines.append(
            f"kv-cache: {{enable-kvcache: true, block-size: {BLOCK},"
            f" kv-cache-size: {int(str(kv_tokens)) // BLOCK}, zmq-endpoint: ''}}"
        )
    return "\n".join(lines) + "\n"


def serve(path: Path, port: int) -> subprocess.Popen[bytes]:
    """``llmsim run`` on the scenario; returns once it answers."""
    command = [*LLMSIM, "run", str(path), "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("llmsim did not start")


def replay(run: Path, port: int, time_scale: float) -> dict[str, object]:
    """Replay the run against the server; the aggregate report."""
    command = [
        *LLMSIM,
        "replay",
        str(run),
        "--url",
        f"http://127.0.0.1:{port}",
        "--time-scale",
        str(time_scale),
        "--json",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    found: dict[str, object] = json.loads(result.stdout)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="folders of recorded vLLM runs")
    parser.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args()
    for run in args.runs:
        with tempfile.TemporaryDirectory(prefix="llmsim-validate-") as folder:
            profile = Path(folder) / "profile.yaml"
            calibration = calibrate(run, profile)
            path = Path(folder) / "scenario.yaml"
            path.write_text(scenario(profile, calibration, args.time_scale))
            port = free_port()
            server = serve(path, port)
            try:
                report = replay(run, port, args.time_scale)
            finally:
                server.terminate()
                server.wait(timeout=15)
        print(f"\n{run.name} (time-scale {args.time_scale:g}): {json.dumps(report, indent=1)}")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
