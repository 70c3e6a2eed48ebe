"""``llmsim replay`` against a real llmsim server: measured latencies match the scenario's.

The server runs upstream's per-request model with a constant TTFT and ITL, so every replayed
request should see them, give or take the client's own overhead: the tolerances are 10% of
each plus 10 ms for TTFT (connection set-up, the client's parsing) and 2 ms for the mean ITL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ServerFactory
from tests.support import PROJECT_ROOT, RunningServer
from tests.unit.calibration.support import Span, write_trace

TTFT = 0.100
ITL = 0.010
MAX_MODEL_LEN = 2048
REQUESTS = 15

SCENARIO = f"""
version: 1
seed: 11
model: {{name: replayed, max-model-len: {MAX_MODEL_LEN}}}
engine: {{max-num-seqs: 64}}
latency:
  time-to-first-token: {int(TTFT * 1000)}ms
  inter-token-latency: {int(ITL * 1000)}ms
"""


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


def recorded_trace(path: Path) -> list[Span]:
    """Requests 80 ms apart (several in flight at once), recorded with the scenario's
    latencies; the last one's prompt is longer than the model's context."""
    spans = []
    for i in range(REQUESTS):
        tokens = 5 + i % 8
        e2e = TTFT + (tokens - 1) * ITL
        spans.append(Span(0.08 * i, 40 + 61 * i, tokens, TTFT, e2e, 0.0, TTFT, e2e - TTFT))
    spans.append(Span(0.08 * REQUESTS, MAX_MODEL_LEN + 10, 4, TTFT, 0.13, 0.0, TTFT, 0.03))
    write_trace(path, spans, per_line=4)
    return spans


def llmsim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmsim", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )


def test_replay_measures_the_scenarios_ttft_and_itl(server: RunningServer, tmp_path: Path) -> None:
    trace = tmp_path / "traces.json"
    spans = recorded_trace(trace)
    rows = tmp_path / "results.jsonl"
    result = llmsim("replay", str(trace), "--url", server.base_url, "--json", "-o", str(rows))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == "replayed"
    assert (report["requests"], report["succeeded"], report["failed"]) == (REQUESTS + 1, 15, 1)
    assert report["failures"] == {"HTTP 400": 1}

    metrics = report["metrics"]
    assert metrics["ttft"]["count"] == REQUESTS
    assert metrics["ttft"]["measured_mean"] == pytest.approx(TTFT, abs=0.1 * TTFT + 0.010)
    assert metrics["ttft"]["measured_p90"] == pytest.approx(TTFT, abs=0.1 * TTFT + 0.010)
    assert metrics["itl"]["measured_mean"] == pytest.approx(ITL, abs=0.1 * ITL + 0.002)
    assert metrics["itl"]["measured_p90"] == pytest.approx(ITL, abs=0.1 * ITL + 0.002)
    recorded_e2e = metrics["e2e"]["recorded_mean"]
    assert recorded_e2e == pytest.approx(sum(s.e2e for s in spans[:REQUESTS]) / REQUESTS)
    assert metrics["e2e"]["measured_mean"] == pytest.approx(recorded_e2e, rel=0.1, abs=0.012)
    assert abs(metrics["ttft"]["mean_error_pct"]) < 20.0

    lines = [json.loads(line) for line in rows.read_text().splitlines()]
    assert len(lines) == REQUESTS + 1
    for line, span in zip(lines, spans, strict=True):
        if not line["ok"]:
            assert line["error"] == "HTTP 400"
            assert span.prompt_tokens > MAX_MODEL_LEN
            continue
        # Token-id prompts are exact: the server counts the recorded prompt length.
        assert line["served_prompt_tokens"] == span.prompt_tokens
        assert line["tokens"] == span.completion_tokens


def test_replay_prints_an_aggregate_table_and_a_line_per_request(
    server: RunningServer, tmp_path: Path
) -> None:
    trace = tmp_path / "traces.json"
    recorded_trace(trace)
    result = llmsim(
        "replay", str(trace), "--url", f"{server.base_url}/v1", "--limit", "3", "--per-request"
    )
    assert result.returncode == 0, result.stderr
    assert "replaying 3 requests over 0.2 s" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["#", "arrival", "in", "out", "status"]
    assert [line.split()[0] for line in lines[1:4]] == ["0", "1", "2"]
    assert "3 requests to" in result.stdout
    assert "3 succeeded, 0 failed" in result.stdout
    for metric in ("TTFT", "ITL", "E2E"):
        assert any(line.strip().startswith(metric) for line in lines), metric
