"""Fitting the batched engine's coefficients to vLLM request traces.

vLLM V1 traces, per request, the engine time from the first schedule to the first token
(prefill) and from the first token to the last (decode), plus the time from arrival to the
first token (TTFT) and to the end (E2E). The engine runs in steps, and every sequence in a step
advances at its end, so these intervals are made of whole steps. The fit rebuilds the step
structure of the run from them, on one timeline per trace file (anchored at each request's first
token, ``start + ttft``):

* every request's prefill interval ``[first - prefill, first]`` is one step or a few; prefill
  intervals that overlap (requests scheduled in the same step, or chunked prompts sharing
  steps) form one *prefill block*, whose steps are counted from its distinct step boundaries
  and its prompt tokens (chunks of at most ``max_num_batched_tokens``). A block is one
  observation: its duration is ``steps x base + per_prefill_token x its prompt tokens +
  per_decode_token x the decode tokens of the sequences decoding beside it (+ context)``.
* every request's decode interval holds exactly ``completion_tokens - 1`` steps. Taking out the
  prefill blocks inside it (their time and their steps), the rest are decode-only steps; their
  mean duration is one observation: ``base + per_decode_token x decoding sequences (+
  per_context_token x their context)``, averaged over those steps (each stretch of time
  weighted by its step count, itself estimated from the previous iteration's coefficients).

Non-negative least squares on relative errors (each observation divided by its value, a block
of k steps counting k times) gives the coefficients; observations off by more than a robust
threshold (vLLM's warm-up, preemptions) are set aside and the fit repeated. The request overhead
is fitted afterwards from ``TTFT - queue - prefill`` (time before the engine takes the request
in, less half the step in progress at its arrival: the engine model makes that wait by itself)
and ``E2E - TTFT - decode`` (time after the last step).

No I/O here, and nothing of the server or the engine: records in, coefficients and figures out.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from llmsim.calibration.nnls import nnls
from llmsim.calibration.simulate import (
    OverheadCoefficients,
    SimRequest,
    StepCoefficients,
    simulate,
)
from llmsim.calibration.stats import error_pct, percentile
from llmsim.calibration.traces import TraceRecord

BOUNDARY_TOLERANCE = 0.002
"""Times closer than this (seconds) are one step boundary: the anchors of different requests
differ by their output-processing delays (vLLM's front end), about a millisecond."""
OUTLIER_THRESHOLD = 4.0
"""Observations whose relative error exceeds this many robust standard deviations (or
``MIN_OUTLIER_ERROR``, whichever is larger) are set aside."""
MIN_OUTLIER_ERROR = 0.15
MAX_ROUNDS = 6
WAIT_NOISE = 0.0005
"""The spread (seconds) of the time before the queue beyond the wait for a step (vLLM's front
end): it keeps requests that arrived on an idle engine from weighing infinitely."""
MIN_DECODE_STEPS = 3
"""A decode interval with fewer decode-only steps than this says little about them."""


class FitError(ValueError):
    """The traces cannot be fitted (too few requests, no engine times); the message says why."""


@dataclass(frozen=True, slots=True)
class Observation:
    """One row of the fit: ``target ~ features . coefficients``."""

    kind: str
    """``prefill`` (a prefill block's duration) or ``decode`` (a request's mean decode-only
    step time)."""
    features: tuple[float, float, float, float]
    """(steps, prompt tokens, decoding sequences, context tokens), summed over the steps."""
    target: float
    requests: tuple[int, ...]
    """Indices (in the fitted records) of the requests it comes from."""


@dataclass(frozen=True, slots=True)
class Agreement:
    """How well predictions match recorded values."""

    count: int
    r_squared: float
    mean_abs_pct_error: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "r_squared": self.r_squared,
            "mean_abs_pct_error": self.mean_abs_pct_error,
        }


@dataclass(frozen=True, slots=True)
class LatencyComparison:
    """Recorded against simulated: mean and p90 of one latency, and the relative errors."""

    recorded_mean: float
    simulated_mean: float
    recorded_p90: float
    simulated_p90: float

    @property
    def mean_error_pct(self) -> float:
        return error_pct(self.simulated_mean, self.recorded_mean)

    @property
    def p90_error_pct(self) -> float:
        return error_pct(self.simulated_p90, self.recorded_p90)

    def as_dict(self) -> dict[str, float]:
        return {
            "recorded_mean": self.recorded_mean,
            "simulated_mean": self.simulated_mean,
            "mean_error_pct": self.mean_error_pct,
            "recorded_p90": self.recorded_p90,
            "simulated_p90": self.simulated_p90,
            "p90_error_pct": self.p90_error_pct,
        }


@dataclass(frozen=True, slots=True)
class Calibration:
    """The fitted coefficients and how well they explain the traces."""

    step: StepCoefficients
    overhead: OverheadCoefficients
    requests: int
    observations: int
    outliers: int
    step_fit: Agreement
    """On the fit's own observations (prefill blocks and mean decode-only step times)."""
    prefill: Agreement
    """Per request: predicted against recorded ``time_in_model_prefill``."""
    decode: Agreement
    """Per request: predicted against recorded ``time_in_model_decode``."""
    itl: Agreement
    """Per request: predicted against recorded mean inter-token time (decode / (tokens - 1))."""
    max_num_batched_tokens: int
    max_num_seqs: int
    simulated: dict[str, LatencyComparison] = field(default_factory=dict)
    """TTFT, ITL and E2E of the engine model run on the trace's arrivals, against the recorded
    ones (empty when not simulated)."""
    kv_cache_tokens: int | None = None
    """The KV cache the simulation used (None: unbounded)."""

    def as_dict(self) -> dict[str, object]:
        return {
            "step_time": {
                "base": self.step.base,
                "per_prefill_token": self.step.per_prefill_token,
                "per_decode_token": self.step.per_decode_token,
                "per_context_token": self.step.per_context_token,
            },
            "request_overhead": {
                "base": self.overhead.base,
                "per_input_token": self.overhead.per_input_token,
                "per_output_token": self.overhead.per_output_token,
            },
            "engine": {
                "max_num_batched_tokens": self.max_num_batched_tokens,
                "max_num_seqs": self.max_num_seqs,
            },
            "requests": self.requests,
            "observations": self.observations,
            "outliers": self.outliers,
            "fit": {
                "steps": self.step_fit.as_dict(),
                "prefill": self.prefill.as_dict(),
                "decode": self.decode.as_dict(),
                "itl": self.itl.as_dict(),
            },
            "simulated": {name: value.as_dict() for name, value in self.simulated.items()},
            "kv_cache_tokens": self.kv_cache_tokens,
        }


# --- the timeline of one run -------------------------------------------------------------


@dataclass(slots=True)
class _Request:
    index: int
    prompt: int
    output: int
    scheduled: float
    first: float
    last: float

    @property
    def decode_steps(self) -> int:
        return max(self.output - 1, 0)


@dataclass(slots=True)
class _Block:
    """Overlapping prefill intervals: steps that compute prompt tokens."""

    start: float
    end: float
    members: list[_Request]
    boundaries: list[float] = field(default_factory=list)
    """Step boundaries inside the block that its members' intervals mark."""
    ends: list[float] = field(default_factory=list)
    """The ends of its steps: the boundaries, and between two of them as many equal steps
    as the block's mean step makes."""
    steps: int = 1
    prompt_tokens: int = 0
    prompt_context: float = 0.0

    @property
    def duration(self) -> float:
        return self.end - self.start

    def steps_between(self, start: float, end: float) -> int:
        """How many of its steps end within ``(start, end]`` (boundaries that close)."""
        margin = 0.5 * BOUNDARY_TOLERANCE
        return bisect.bisect_right(self.ends, end + margin) - bisect.bisect_right(
            self.ends, start + margin
        )

    def share(self, start: float, end: float) -> float:
        """The fraction of its steps that end within ``(start, end]``."""
        return self.steps_between(start, end) / self.steps

    def step_at(self, time: float) -> float:
        """The length of the step going on at ``time``: between two known boundaries, the
        steps are taken as equal (their number from the block's mean step)."""
        mean_step = self.duration / self.steps
        index = bisect.bisect_right(self.boundaries, time)
        if index == 0 or index >= len(self.boundaries):
            return mean_step
        gap = self.boundaries[index] - self.boundaries[index - 1]
        return gap / max(1, round(gap / mean_step))


@dataclass(slots=True)
class _Segment:
    """A stretch of time with the same sequences decoding, inside a prefill block or not."""

    start: float
    end: float
    decoders: int
    context: float
    block: _Block | None

    @property
    def length(self) -> float:
        return self.end - self.start


class _Timeline:
    """The step structure of one run, rebuilt from its requests' intervals."""

    def __init__(self, requests: list[_Request], budget: int):
        self.requests = requests
        self.budget = budget
        self.blocks = self._blocks()
        self.segments = self._segments()
        self.starts = [segment.start for segment in self.segments]
        self.update_context(None)

    def _blocks(self) -> list[_Block]:
        intervals = sorted(
            (r for r in self.requests if r.first > r.scheduled), key=lambda r: r.scheduled
        )
        blocks: list[_Block] = []
        for request in intervals:
            last = blocks[-1] if blocks else None
            overlap = last.end - request.scheduled if last else -1.0
            shorter = min(last.duration, request.first - request.scheduled) if last else 0.0
            if last is not None and overlap > min(BOUNDARY_TOLERANCE, 0.3 * shorter):
                last.members.append(request)
                last.end = max(last.end, request.first)
            else:
                blocks.append(_Block(request.scheduled, request.first, [request]))
        for block in blocks:
            block.prompt_tokens = sum(r.prompt for r in block.members)
            block.boundaries = _boundaries(
                [r.scheduled for r in block.members] + [r.first for r in block.members]
            )
            steps = max(1, len(block.boundaries) - 1, -(-block.prompt_tokens // self.budget))
            mean_step = block.duration / steps
            points = [block.start, *block.boundaries, block.end]
            block.ends = []
            for low, high in itertools.pairwise(points):
                if high - low <= BOUNDARY_TOLERANCE:
                    continue
                count = max(1, round((high - low) / mean_step))
                block.ends.extend(low + (high - low) * k / count for k in range(1, count + 1))
            if not block.ends:
                block.ends = [block.end]
            block.steps = len(block.ends)
            block.prompt_context = sum(
                _prefill_context(r.prompt, self.budget) for r in block.members
            )
        return blocks

    def _segments(self) -> list[_Segment]:
        edges = {r.first for r in self.requests} | {r.last for r in self.requests}
        for each in self.blocks:
            edges.update((each.start, each.end))
        points = sorted(edges)
        # Sequences decoding: +1 at each first token, -1 at each last (both are edges).
        changes: dict[float, int] = {}
        for r in self.requests:
            if r.last > r.first:
                changes[r.first] = changes.get(r.first, 0) + 1
                changes[r.last] = changes.get(r.last, 0) - 1
        segments: list[_Segment] = []
        block_index = 0
        active = 0
        for start, end in itertools.pairwise(points):
            active += changes.get(start, 0)
            if end <= start:
                continue
            middle = 0.5 * (start + end)
            while block_index < len(self.blocks) and self.blocks[block_index].end <= middle:
                block_index += 1
            block: _Block | None = None
            if block_index < len(self.blocks) and self.blocks[block_index].start <= middle:
                block = self.blocks[block_index]
            segments.append(_Segment(start, end, active, 0.0, block))
        return segments

    def update_context(self, step: StepCoefficients | None) -> None:
        """Set each segment's context: the prompts of the sequences decoding then, plus the
        tokens each had emitted by the middle of the segment. A sequence's tokens come one a
        step: the steps of its decode interval are the prefill blocks' (their step counts)
        and decode-only steps, spread over the rest by their durations under ``step`` (by
        time when it is None)."""
        contexts = [0.0] * len(self.segments)
        for request in self.requests:
            if request.last <= request.first or request.decode_steps == 0:
                continue
            pieces = self.indices_between(request.first, request.last)
            shares: list[float] = []
            in_blocks = free = 0.0
            for index in pieces:
                segment = self.segments[index]
                block = segment.block
                if block is not None:
                    share = float(block.steps_between(segment.start, segment.end))
                    in_blocks += share
                else:
                    duration = (
                        step.step(0, segment.decoders, int(segment.context))
                        if step is not None
                        else 1.0
                    )
                    share = segment.length / duration if duration > 0 else segment.length
                    free += share
                shares.append(share)
            free_steps = request.decode_steps - in_blocks
            if free > 0 and free_steps > 0:
                scale_free, scale_blocks = free_steps / free, 1.0
            else:  # the counts do not add up: spread the steps over time
                total = sum(shares)
                scale_free = scale_blocks = request.decode_steps / total if total > 0 else 0.0
            emitted = 1.0
            for index, share in zip(pieces, shares, strict=True):
                steps = share * (scale_blocks if self.segments[index].block else scale_free)
                contexts[index] += request.prompt + emitted + 0.5 * steps
                emitted += steps
        for segment, context in zip(self.segments, contexts, strict=True):
            segment.context = context

    def at(self, time: float) -> _Segment | None:
        """The segment going on at ``time`` (None: nothing was running)."""
        index = bisect.bisect_right(self.starts, time) - 1
        if index >= 0 and self.segments[index].end > time:
            return self.segments[index]
        return None

    def indices_between(self, start: float, end: float) -> list[int]:
        """The indices of the segments within ``[start, end]`` (both segment edges)."""
        index = max(bisect.bisect_right(self.starts, start) - 1, 0)
        found = []
        while index < len(self.segments) and self.segments[index].start < end:
            if self.segments[index].end > start:
                found.append(index)
            index += 1
        return found

    def between(self, start: float, end: float) -> list[tuple[_Segment, float]]:
        """The segments overlapping ``[start, end]`` with the length of each overlap."""
        found = []
        index = max(bisect.bisect_right(self.starts, start) - 1, 0)
        while index < len(self.segments) and self.segments[index].start < end:
            segment = self.segments[index]
            overlap = min(segment.end, end) - max(segment.start, start)
            if overlap > 0:
                found.append((segment, overlap))
            index += 1
        return found


def _boundaries(times: list[float]) -> list[float]:
    """The distinct step boundaries ``times`` mark (closer than ``BOUNDARY_TOLERANCE`` is one
    boundary), sorted."""
    found: list[float] = []
    previous = -math.inf
    for time in sorted(times):
        if time - previous > BOUNDARY_TOLERANCE:
            found.append(time)
        previous = time
    return found


def _prefill_context(prompt: int, budget: int) -> float:
    """Context tokens of a prompt's prefill steps: each chunk counts the tokens computed by its
    end (one chunk: the prompt)."""
    chunks = -(-prompt // budget)
    return float(sum(min(chunk * budget, prompt) for chunk in range(1, chunks + 1)))


def _requests(records: Sequence[TraceRecord], offset: int) -> list[_Request]:
    """The records' intervals, timed from the first record's start (Unix times as floats
    would keep only a quarter of a microsecond)."""
    origin = min(record.start for record in records)
    requests = []
    for index, record in enumerate(records):
        assert record.prefill is not None and record.decode is not None
        first = record.start - origin + record.ttft
        requests.append(
            _Request(
                index=offset + index,
                prompt=record.prompt_tokens,
                output=record.completion_tokens,
                scheduled=first - record.prefill,
                first=first,
                last=first + record.decode,
            )
        )
    return requests


# --- observations ------------------------------------------------------------------------


@dataclass(slots=True)
class _DecodeWindow:
    """A request's decode interval, split into prefill blocks and decode-only stretches."""

    request: _Request
    block_steps: float
    block_time: float
    blocks: list[tuple[_Block, float]]
    """Blocks inside the interval, with the share of each that is inside."""
    stretches: list[tuple[_Segment, float]]
    """Decode-only segments inside the interval, with their overlap lengths."""

    @property
    def free_steps(self) -> float:
        return self.request.decode_steps - self.block_steps

    @property
    def free_time(self) -> float:
        return sum(length for _, length in self.stretches)


def _window(timeline: _Timeline, request: _Request) -> _DecodeWindow:
    touched: dict[int, _Block] = {}
    stretches = []
    block_time = 0.0
    for segment, length in timeline.between(request.first, request.last):
        if segment.block is None:
            stretches.append((segment, length))
        else:
            touched[id(segment.block)] = segment.block
            block_time += length
    blocks = [(block, block.share(request.first, request.last)) for block in touched.values()]
    return _DecodeWindow(
        request=request,
        block_steps=sum(block.steps * share for block, share in blocks),
        block_time=block_time,
        blocks=blocks,
        stretches=stretches,
    )


def _block_features(timeline: _Timeline, block: _Block) -> tuple[float, float, float, float]:
    decodes = context = 0.0
    for segment, _ in timeline.between(block.start, block.end):
        steps = block.steps_between(segment.start, segment.end)
        decodes += steps * segment.decoders
        context += steps * segment.context
    return (
        float(block.steps),
        float(block.prompt_tokens),
        decodes,
        context + block.prompt_context,
    )


def _decode_features(
    window: _DecodeWindow, step: StepCoefficients | None
) -> tuple[float, float, float, float] | None:
    """Mean (decoders, context) per decode-only step of the window, each stretch weighted by
    its step count (from ``step``; by its length on the first round)."""
    weights = []
    for segment, length in window.stretches:
        duration = step.step(0, segment.decoders, int(segment.context)) if step is not None else 1.0
        weights.append(length / duration if duration > 0 else length)
    total = sum(weights)
    if total <= 0:
        return None
    decoders = sum(w * s.decoders for w, (s, _) in zip(weights, window.stretches, strict=True))
    context = sum(w * s.context for w, (s, _) in zip(weights, window.stretches, strict=True))
    return (1.0, 0.0, decoders / total, context / total)


@dataclass(slots=True)
class _Run:
    """One trace file's requests and their rebuilt timeline."""

    records: list[TraceRecord]
    requests: list[_Request]
    timeline: _Timeline
    windows: list[_DecodeWindow]


def _observations(runs: Sequence[_Run], step: StepCoefficients | None) -> list[Observation]:
    rows: list[Observation] = []
    for run in runs:
        run.timeline.update_context(step)
        for block in run.timeline.blocks:
            if block.duration > 0:
                rows.append(
                    Observation(
                        "prefill",
                        _block_features(run.timeline, block),
                        block.duration,
                        tuple(r.index for r in block.members),
                    )
                )
        for window in run.windows:
            if window.free_steps < max(MIN_DECODE_STEPS, 0.25 * window.request.decode_steps):
                continue
            features = _decode_features(window, step)
            if features is None or window.free_time <= 0:
                continue
            rows.append(
                Observation(
                    "decode",
                    features,
                    window.free_time / window.free_steps,
                    (window.request.index,),
                )
            )
    return rows


def _predict(features: Sequence[float], step: StepCoefficients) -> float:
    steps, prompt, decodes, context = features
    return (
        steps * step.base
        + prompt * step.per_prefill_token
        + decodes * step.per_decode_token
        + context * step.per_context_token
    )


def _solve(rows: Sequence[Observation], context: bool) -> StepCoefficients:
    width = 4 if context else 3
    matrix = [list(row.features[:width]) for row in rows]
    targets = [row.target for row in rows]
    # Relative errors; a prefill block of k steps counts as k observations of a step.
    weights = [(row.features[0] if row.kind == "prefill" else 1.0) / row.target**2 for row in rows]
    solution = nnls(matrix, targets, weights)
    return StepCoefficients(
        base=solution[0],
        per_prefill_token=solution[1],
        per_decode_token=solution[2],
        per_context_token=solution[3] if context else 0.0,
    )


def _robust_fit(
    runs: Sequence[_Run], context: bool
) -> tuple[StepCoefficients, list[Observation], list[Observation]]:
    """Coefficients from the observations, refitted without outliers and with step weights
    from the previous round until nothing changes; the kept and the set-aside rows."""
    step: StepCoefficients | None = None
    rows = _observations(runs, step)
    if len(rows) < 4:
        raise FitError(f"too few observations to fit ({len(rows)}): trace more requests")
    kept = rows
    excluded: set[tuple[str, tuple[int, ...]]] = set()
    for _ in range(MAX_ROUNDS):
        step = _solve(kept, context)
        rows = _observations(runs, step)
        errors = [(_predict(row.features, step) - row.target) / row.target for row in rows]
        center = statistics.median(errors)
        spread = 1.4826 * statistics.median(abs(e - center) for e in errors)
        limit = max(OUTLIER_THRESHOLD * spread, MIN_OUTLIER_ERROR)
        now_excluded = {
            (row.kind, row.requests)
            for row, error in zip(rows, errors, strict=True)
            if abs(error - center) > limit
        }
        kept = [row for row in rows if (row.kind, row.requests) not in now_excluded]
        if now_excluded == excluded:
            break
        excluded = now_excluded
    step = _solve(kept, context)
    outliers = [row for row in rows if (row.kind, row.requests) in excluded]
    return step, kept, outliers


# --- the whole fit -----------------------------------------------------------------------


def fit(
    records: Sequence[TraceRecord],
    max_num_batched_tokens: int,
    max_num_seqs: int = 256,
    context: bool = True,
    kv_cache_tokens: int | None = None,
    simulate_check: bool = True,
) -> Calibration:
    """Fit step-time and overhead coefficients to ``records`` (several trace files may be
    mixed: each file is one run with its own timeline)."""
    usable = [r for r in records if r.has_engine_times and r.completion_tokens >= 1]
    if not usable:
        raise FitError(
            "the traces have no engine times (gen_ai.latency.time_in_model_prefill and"
            " time_in_model_decode): they come from vLLM's V1 engine (0.10 or later)"
        )
    if len(usable) < 4:
        raise FitError(f"too few requests to fit ({len(usable)}): trace more")
    if max_num_batched_tokens < 1:
        raise FitError("max_num_batched_tokens must be at least 1")
    by_file: dict[str, list[TraceRecord]] = {}
    for record in usable:
        by_file.setdefault(record.file, []).append(record)
    runs: list[_Run] = []
    ordered: list[TraceRecord] = []
    for file_records in by_file.values():
        file_records.sort(key=lambda r: r.start)
        requests = _requests(file_records, len(ordered))
        ordered.extend(file_records)
        timeline = _Timeline(requests, max_num_batched_tokens)
        windows = [_window(timeline, r) for r in requests if r.decode_steps > 0]
        runs.append(_Run(file_records, requests, timeline, windows))

    step, kept, outliers = _robust_fit(runs, context)
    step_fit = _agreement(
        [_predict(row.features, step) for row in kept], [row.target for row in kept]
    )
    prefill, decode, itl = _per_request(
        runs,
        step,
        skip_prefill={i for row in outliers if row.kind == "prefill" for i in row.requests},
        skip_decode={i for row in outliers if row.kind == "decode" for i in row.requests},
    )
    overhead = _fit_overhead(runs, step)
    simulated: dict[str, LatencyComparison] = {}
    if simulate_check:
        simulated = compare_simulation(
            ordered, step, overhead, max_num_batched_tokens, max_num_seqs, kv_cache_tokens
        )
    return Calibration(
        step=step,
        overhead=overhead,
        requests=len(ordered),
        observations=len(kept) + len(outliers),
        outliers=len(outliers),
        step_fit=step_fit,
        prefill=prefill,
        decode=decode,
        itl=itl,
        max_num_batched_tokens=max_num_batched_tokens,
        max_num_seqs=max_num_seqs,
        simulated=simulated,
        kv_cache_tokens=kv_cache_tokens,
    )


def _agreement(predicted: Sequence[float], recorded: Sequence[float]) -> Agreement:
    pairs = [(p, r) for p, r in zip(predicted, recorded, strict=True) if r > 0]
    if not pairs:
        return Agreement(0, math.nan, math.nan)
    mean = statistics.fmean(r for _, r in pairs)
    total = sum((r - mean) ** 2 for _, r in pairs)
    residual = sum((p - r) ** 2 for p, r in pairs)
    r_squared = 1.0 - residual / total if total > 0 else math.nan
    mape = 100.0 * statistics.fmean(abs(p - r) / r for p, r in pairs)
    return Agreement(len(pairs), r_squared, mape)


def _per_request(
    runs: Sequence[_Run],
    step: StepCoefficients,
    skip_prefill: set[int],
    skip_decode: set[int],
) -> tuple[Agreement, Agreement, Agreement]:
    """Predicted against recorded prefill time, decode time and mean ITL, per request (but
    those whose observation the fit set aside)."""
    block_time: dict[int, float] = {}
    for run in runs:
        for block in run.timeline.blocks:
            block_time[id(block)] = _predict(_block_features(run.timeline, block), step)
    prefill_pairs: list[tuple[float, float]] = []
    decode_pairs: list[tuple[float, float]] = []
    itl_pairs: list[tuple[float, float]] = []
    for run in runs:
        block_of: dict[int, _Block] = {
            r.index: block for block in run.timeline.blocks for r in block.members
        }
        for request in run.requests:
            owner = block_of.get(request.index)
            if owner is not None and owner.duration > 0 and request.index not in skip_prefill:
                # A block shared by several prefills: each its part of the block's time.
                recorded = request.first - request.scheduled
                share = min(recorded / owner.duration, 1.0)
                prefill_pairs.append((block_time[id(owner)] * share, recorded))
        for window in run.windows:
            if window.request.index in skip_decode:
                continue
            features = _decode_features(window, step)
            free = 0.0
            if features is not None and window.free_steps > 0:
                free = window.free_steps * _predict(features, step)
            inside = sum(block_time[id(block)] * share for block, share in window.blocks)
            recorded = window.request.last - window.request.first
            predicted = free + inside
            decode_pairs.append((predicted, recorded))
            n = window.request.decode_steps
            itl_pairs.append((predicted / n, recorded / n))
    return (
        _agreement(*_unzip(prefill_pairs)),
        _agreement(*_unzip(decode_pairs)),
        _agreement(*_unzip(itl_pairs)),
    )


def _unzip(pairs: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [p for p, _ in pairs], [r for _, r in pairs]


# --- request overhead --------------------------------------------------------------------


def _step_length(run: _Run, time: float, step: StepCoefficients) -> float:
    """The length of the step going on at ``time`` (from the run's start); 0 when idle."""
    segment = run.timeline.at(time)
    if segment is None:
        return 0.0
    block = segment.block
    if block is not None and block.duration > 0:
        return block.step_at(time)
    if segment.decoders > 0:
        return step.step(0, segment.decoders, int(segment.context))
    return 0.0


def _fit_overhead(runs: Sequence[_Run], step: StepCoefficients) -> OverheadCoefficients:
    """``base + per_input_token x prompt`` from the time before the queue, and
    ``per_output_token x output`` from the time after the last step."""
    before_rows: list[list[float]] = []
    before: list[float] = []
    before_weights: list[float] = []
    after_rows: list[list[float]] = []
    after: list[float] = []
    for run in runs:
        origin = min(record.start for record in run.records)
        for record in run.records:
            assert record.queue is not None and record.prefill is not None
            assert record.decode is not None
            # The time before the queue includes the wait in vLLM's input queue for the step
            # in progress to end; the engine model makes that wait itself, so it is not
            # overhead. Requests arrive at random points of a step: half a step on average.
            # Weighted by the inverse of that wait's variance (a uniform draw from a step).
            early = record.ttft - record.queue - record.prefill
            length = _step_length(run, record.start - origin, step)
            before_rows.append([1.0, float(record.prompt_tokens)])
            before.append(early - 0.5 * length)
            before_weights.append(1.0 / (length**2 / 12.0 + WAIT_NOISE**2))
            after_rows.append([float(record.completion_tokens)])
            after.append(record.e2e - record.ttft - record.decode)
    base, per_input = _robust_nnls(before_rows, before, before_weights)
    (per_output,) = _robust_nnls(after_rows, after)
    return OverheadCoefficients(base, per_input, per_output)


def _robust_nnls(
    rows: list[list[float]], targets: list[float], weights: list[float] | None = None
) -> list[float]:
    """Weighted NNLS, refitted once without the rows whose standardised error is more than
    four robust standard deviations (requests that met a preemption, a stall)."""
    w = weights if weights is not None else [1.0] * len(rows)
    solution = nnls(rows, targets, w)
    errors = [
        math.sqrt(wi) * (sum(a * x for a, x in zip(row, solution, strict=True)) - t)
        for row, t, wi in zip(rows, targets, w, strict=True)
    ]
    center = statistics.median(errors)
    spread = 1.4826 * statistics.median(abs(e - center) for e in errors)
    limit = max(OUTLIER_THRESHOLD * spread, 1e-12)
    kept = [i for i, e in enumerate(errors) if abs(e - center) <= limit]
    if len(rows[0]) <= len(kept) < len(rows):
        solution = nnls([rows[i] for i in kept], [targets[i] for i in kept], [w[i] for i in kept])
    return solution


# --- checking by simulation --------------------------------------------------------------


def compare_simulation(
    records: Sequence[TraceRecord],
    step: StepCoefficients,
    overhead: OverheadCoefficients,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    kv_cache_tokens: int | None = None,
) -> dict[str, LatencyComparison]:
    """Run the engine model on the records' arrivals (each file from its own start) and
    compare its TTFT, mean ITL and E2E with the recorded ones."""
    by_file: dict[str, list[TraceRecord]] = {}
    for record in records:
        by_file.setdefault(record.file, []).append(record)
    recorded: dict[str, list[float]] = {"ttft": [], "itl": [], "e2e": []}
    simulated: dict[str, list[float]] = {"ttft": [], "itl": [], "e2e": []}
    for file_records in by_file.values():
        first = min(r.start for r in file_records)
        requests = [
            SimRequest(r.start - first, r.prompt_tokens, r.completion_tokens) for r in file_records
        ]
        results = simulate(
            requests, step, overhead, max_num_batched_tokens, max_num_seqs, kv_cache_tokens
        )
        for record, result in zip(file_records, results, strict=True):
            recorded["ttft"].append(record.ttft)
            simulated["ttft"].append(result.ttft)
            recorded["e2e"].append(record.e2e)
            simulated["e2e"].append(result.e2e)
            itl = record.itl
            if itl is not None:
                recorded["itl"].append(itl)
                simulated["itl"].append(
                    (result.last_token - result.first_token) / (record.completion_tokens - 1)
                )
    return {
        name: LatencyComparison(
            statistics.fmean(recorded[name]),
            statistics.fmean(simulated[name]),
            percentile(recorded[name], 90),
            percentile(simulated[name], 90),
        )
        for name in recorded
        if recorded[name]
    }
