"""``llmsim plan FILE --plot OUT.png``: latency distributions and the phase timeline as a PNG,
deterministic for a seeded scenario; without matplotlib, exit 2 naming the extra to install."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from llmsim.plan.compile import compile_scenario
from llmsim.plan.plot import latency_series
from llmsim.plan.samplers import Constant, Lognormal, Uniform
from llmsim.scenario.loader import load_scenario
from tests.support import PROJECT_ROOT

SCENARIO = """\
version: 1
name: plotted
seed: 11
latency:
  time-to-first-token: {distribution: lognormal, median: 200ms, p99: 900ms}
  inter-token-latency: {distribution: uniform, min: 10ms, max: 30ms}
phases:
  - name: warm-up
    start: 0s
    duration: 20s
    latency:
      time-to-first-token: {distribution: uniform, min: 500ms, max: 1500ms}
  - name: degraded
    after-requests: 100
    latency:
      inter-token-latency: 80ms
    failures:
      failure-injection-rate: 10%
"""

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INSTALL_LINE = "pip install 'llmsim[plot]'"


def llmsim(*args: str, block_matplotlib: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``llmsim ARGS``; with ``block_matplotlib``, as if matplotlib were not installed."""
    if block_matplotlib:
        code = (
            "import sys; sys.modules['matplotlib'] = None; "
            "from llmsim.cli import main; sys.argv = ['llmsim', *sys.argv[1:]]; main()"
        )
        command = [sys.executable, "-c", code, *args]
    else:
        command = [sys.executable, "-m", "llmsim", *args]
    return subprocess.run(
        command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120, check=False
    )


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(SCENARIO)
    return path


def test_plot_writes_a_png_and_still_prints_the_plan(scenario: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    out = tmp_path / "out.png"
    result = llmsim("plan", str(scenario), "--plot", str(out))
    assert result.returncode == 0, result.stderr
    assert "phases:" in result.stdout and "warm-up: at 0s, for 20s" in result.stdout
    assert str(out) in result.stderr
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert width >= 800 and height >= 400


def test_plot_is_the_same_for_the_same_seed(scenario: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the plot extra is not installed")
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    assert llmsim("plan", str(scenario), "--plot", str(first)).returncode == 0
    assert llmsim("plan", str(scenario), "--plot", str(second)).returncode == 0
    assert first.read_bytes() == second.read_bytes()


def test_without_matplotlib_plot_exits_2_naming_the_extra(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    result = llmsim("plan", str(scenario), "--plot", str(out), block_matplotlib=True)
    assert result.returncode == 2
    assert INSTALL_LINE in result.stderr
    assert result.stdout == ""
    assert not out.exists()


def test_without_matplotlib_plan_alone_still_works(scenario: Path) -> None:
    result = llmsim("plan", str(scenario), block_matplotlib=True)
    assert result.returncode == 0, result.stderr
    assert "scenario: plotted" in result.stdout


def test_series_are_the_base_plan_and_each_phase_that_changes_a_latency(scenario: Path) -> None:
    plan = compile_scenario(load_scenario(scenario, []))
    series = latency_series(plan)
    assert list(series) == ["time-to-first-token", "inter-token-latency"]
    ttft = series["time-to-first-token"]
    assert [s.label for s in ttft] == ["base", "phase warm-up"]
    assert isinstance(ttft[0].sampler, Lognormal) and isinstance(ttft[1].sampler, Uniform)
    itl = series["inter-token-latency"]
    assert [s.label for s in itl] == ["base", "phase degraded"]
    assert isinstance(itl[0].sampler, Uniform) and itl[1].sampler == Constant(0.08)
    # A phase keeps its colour across histograms (and on the timeline).
    assert ttft[1].color != itl[1].color != ttft[0].color == itl[0].color
