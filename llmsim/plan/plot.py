"""``llmsim plan --plot``: a picture of a plan's latency distributions and phase timeline.

Each latency the plan draws (time to first token, or its per-token prefill parts; inter-token
latency; remote prefill and image generation when set) gets a histogram of samples drawn from
its compiled sampler, with one series for the base plan, one per phase that changes latencies
and one per rule that does. The phase timeline shows phases that begin at a time as bars on a
time axis and lists those that begin after N requests. Samples come from ``random.Random`` seeded
with the scenario's seed (0 without one), so a scenario always gives the same picture.

matplotlib is an optional dependency (``pip install 'llmsim[plot]'``); it is imported only when
a plot is drawn, and only its Agg canvas is used (no pyplot, no display, no global state).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from llmsim.plan.plan import LatencyPlan, RuntimePlan
from llmsim.plan.samplers import Constant, Sampler
from llmsim.scenario.units import format_duration

if TYPE_CHECKING:
    # matplotlib is optional: type-checking works with or without it.
    from matplotlib.axes import Axes  # type: ignore[import-not-found, unused-ignore]

INSTALL_HINT = "pip install 'llmsim[plot]'"
SAMPLES = 20_000
"""Samples drawn per latency and series."""
BINS = 60
_TAIL = 0.995
"""Histograms span up to this quantile of the samples (log-normal tails would flatten them)."""


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""

    def __init__(self) -> None:
        super().__init__(f"plotting needs matplotlib: {INSTALL_HINT}")


@dataclass(frozen=True, slots=True)
class Series:
    """One latency of one plan (base, phase or rule): its label, sampler and colour (a phase
    has the same colour in every histogram and on the timeline)."""

    label: str
    sampler: Sampler
    color: str


def latency_series(plan: RuntimePlan) -> dict[str, list[Series]]:
    """The latencies to draw, by name, each with its series: the base plan's, then each
    phase's and each rule's that differs from it."""
    from llmsim.plan.compile import phase_plan

    overlays: list[tuple[str, LatencyPlan, str]] = []
    for index, (window, declared) in enumerate(zip(plan.phases, plan.scenario.phases, strict=True)):
        if declared.latency is not None:
            latency = phase_plan(plan, (index,)).latency
            overlays.append((f"phase {window.name}", latency, phase_color(index)))
    overlays += [
        (rule.label, rule.latency, _color(1 + len(plan.phases) + index))
        for index, rule in enumerate(plan.rules)
        if rule.latency is not None
    ]
    found: dict[str, list[Series]] = {}
    for label, latency, color in [("base", plan.latency, _color(0)), *overlays]:
        for name, sampler in _drawn_latencies(latency):
            series = found.setdefault(name, [])
            if label == "base" or all(s.sampler != sampler for s in series):
                series.append(Series(label, sampler, color))
    return found


def phase_color(index: int) -> str:
    """The colour of the phase at ``index`` (the base plan's is ``C0``)."""
    return _color(1 + index)


def _color(index: int) -> str:
    return f"C{index % 10}"


def _drawn_latencies(latency: LatencyPlan) -> list[tuple[str, Sampler]]:
    """The latencies a plan uses, by their scenario key, leaving out unset (zero) ones other
    than time to first token and inter-token latency."""
    if latency.per_token_prefill:
        first = [
            ("prefill-overhead", latency.prefill_overhead),
            ("prefill-time-per-token", latency.prefill_time_per_token),
        ]
    else:
        first = [("time-to-first-token", latency.time_to_first_token)]
    remote = (
        ("kv-cache-transfer-time-per-token", latency.kv_cache_transfer_time_per_token)
        if latency.per_token_transfer
        else ("kv-cache-transfer-latency", latency.kv_cache_transfer_latency)
    )
    optional = [remote, ("time-to-generate-image", latency.time_to_generate_image)]
    if latency.per_token_prefill:
        optional = [*first, *optional]
        first = []
    kept = [(name, s) for name, s in optional if s != Constant(0.0)]
    return [*first, ("inter-token-latency", latency.inter_token_latency), *kept]


def draw_plan(plan: RuntimePlan, out: Path | BinaryIO, seed_given: bool = True) -> None:
    """Draw ``plan``'s latency distributions and phase timeline as a PNG into ``out``.

    Raises ``PlotUnavailable`` when matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import (  # type: ignore[import-not-found, unused-ignore]
            FigureCanvasAgg,
        )
        from matplotlib.figure import Figure  # type: ignore[import-not-found, unused-ignore]
    except ImportError as exc:
        raise PlotUnavailable() from exc

    seed = plan.seed if seed_given else 0
    latencies = latency_series(plan)
    columns = 2
    rows = math.ceil(len(latencies) / columns)
    timeline = max(1.6, 0.45 * len(plan.phases) + 1.2)
    heights = [3.4] * rows + [timeline]
    figure = Figure(figsize=(12, sum(heights) + 0.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    grid = figure.add_gridspec(rows + 1, columns, height_ratios=heights)
    for index, (name, series) in enumerate(latencies.items()):
        axes = figure.add_subplot(grid[index // columns, index % columns])
        _draw_latency(axes, name, series, seed)
    _draw_timeline(figure.add_subplot(grid[rows, :]), plan)
    note = f"seed {plan.seed}" if seed_given else "seed 0 (none in the scenario)"
    figure.suptitle(f"llmsim plan: {plan.scenario_name} ({note}, {SAMPLES} samples per series)")
    # No software version in the file: the same scenario gives the same bytes.
    figure.savefig(out, format="png", metadata={"Software": None})


def _draw_latency(axes: Axes, name: str, series: list[Series], seed: int) -> None:
    """Histograms of ``series`` on shared bins (logarithmic when the values span more than a
    factor of 20), as shares of the samples; a constant is a vertical line."""
    drawn: list[tuple[Series, list[float]]] = []
    for position, one in enumerate(series):
        rng = random.Random(f"{seed}:{name}:{position}")
        drawn.append((one, [one.sampler.sample(rng) * 1000 for _ in range(SAMPLES)]))
    pooled = sorted(v for _, values in drawn for v in values)
    low = pooled[0]
    high = pooled[min(len(pooled) - 1, int(_TAIL * len(pooled)))]
    cut = high < pooled[-1]
    logarithmic = low > 0 and high / low > 20
    if high <= low:
        high = low + max(1.0, abs(low) * 0.1)
    if logarithmic:
        ratio = high / low
        edges = [low * ratio ** (i / BINS) for i in range(BINS + 1)]
        axes.set_xscale("log")
        axes.set_xlim(low / ratio**0.02, high * ratio**0.02)
    else:
        edges = [low + (high - low) * i / BINS for i in range(BINS + 1)]
        axes.set_xlim(low - (high - low) * 0.02, high + (high - low) * 0.02)
    for one, values in drawn:
        label = f"{one.label}: {one.sampler.describe()}"
        if isinstance(one.sampler, Constant):
            axes.axvline(one.sampler.value * 1000, color=one.color, linewidth=2, label=label)
        else:
            axes.hist(
                values,
                bins=edges,
                weights=[1 / len(values)] * len(values),
                histtype="stepfilled",
                alpha=0.45,
                color=one.color,
                edgecolor=one.color,
                label=label,
            )
    axes.set_title(name + (f" (up to p{_TAIL * 100:g})" if cut else ""))
    axes.set_xlabel("milliseconds" + (" (log scale)" if logarithmic else ""))
    if all(isinstance(one.sampler, Constant) for one in series):
        axes.set_yticks([])
    else:
        axes.set_ylabel("share of samples")
    axes.legend(fontsize="small", loc="best")


def _draw_timeline(axes: Axes, plan: RuntimePlan) -> None:
    axes.set_title("phases (time since the server is ready)")
    axes.set_xlabel("seconds")
    phases = plan.phases
    if not phases:
        axes.set_yticks([])
        axes.set_xticks([])
        axes.text(0.5, 0.5, "no phases", ha="center", va="center", transform=axes.transAxes)
        return
    timed = [(i, p) for i, p in enumerate(phases) if p.start is not None]
    ends = [(p.start or 0.0) + (p.duration or 0.0) for _, p in timed if p.duration is not None] + [
        p.start or 0.0 for _, p in timed
    ]
    horizon = max([*ends, *(p.duration or 0.0 for p in phases), 1.0]) * 1.15
    labels: list[str] = []
    for row, (index, phase) in enumerate(enumerate(phases)):
        color = phase_color(index)
        labels.append(phase.name)
        if phase.start is None:
            lasts = (
                f"for {format_duration(phase.duration)}"
                if phase.duration is not None
                else (
                    f"until {phases[index + 1].name}" if index + 1 < len(phases) else "to the end"
                )
            )
            axes.text(
                0,
                row,
                f"  begins with request {(phase.after_requests or 0) + 1}, {lasts}",
                va="center",
                color=color,
            )
            continue
        end, open_ended = _timed_end(index, plan, horizon)
        axes.broken_barh(
            [(phase.start, end - phase.start)],
            (row - 0.3, 0.6),
            facecolors=color,
            alpha=0.6 if not open_ended else 0.3,
            hatch=None if not open_ended else "//",
        )
        span = f"{format_duration(phase.start)} .. " + (
            format_duration(end) if not open_ended else "(open)"
        )
        axes.text(phase.start, row, f" {span}", fontsize="small", va="center")
    axes.set_xlim(0, horizon)
    axes.set_ylim(len(phases) - 0.4, -0.6)
    axes.set_yticks(range(len(phases)), labels)
    axes.grid(axis="x", alpha=0.3)


def _timed_end(index: int, plan: RuntimePlan, horizon: float) -> tuple[float, bool]:
    """Where a time-based phase's bar ends, and whether that end is open (it lasts until a
    later phase that begins after a request count, or to the end)."""
    phase = plan.phases[index]
    start = phase.start or 0.0
    if phase.duration is not None:
        return start + phase.duration, False
    if index + 1 < len(plan.phases):
        following = plan.phases[index + 1].start
        if following is not None:
            return max(start, following), False
    return horizon, True
