"""Writing fitted coefficients as an engine profile file (the format ``engine.profile`` reads).

The text is written here, not dumped, so that the file reads like the shipped profiles:
durations with units (``6.27ms``, ``19us``, ``176ns``), a comment saying what was fitted, and a
``source`` that says from what and how well. Only the keys profiles accept are written; what
does not fit them (the KV-cache size of the traced run) goes in a comment.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass

from llmsim.calibration.fit import Calibration
from llmsim.scenario.units import format_duration


@dataclass(frozen=True, slots=True)
class ProfileInfo:
    """What a profile says besides its coefficients."""

    name: str
    model: str
    gpu: str = "unknown"
    tensor_parallel_size: int = 1
    vllm_version: str | None = None


def _quote(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is a subset of YAML's)."""
    return json.dumps(text, ensure_ascii=False)


def source_text(calibration: Calibration, files: Sequence[str], today: datetime.date) -> str:
    """The profile's ``source``: what was fitted, from what, when, and how well."""
    fit = calibration
    text = (
        f"fitted by llmsim calibrate from {', '.join(files)} on {today.isoformat()}:"
        f" {fit.requests} requests, {fit.observations} observations"
        f" ({fit.outliers} set aside as outliers);"
        f" R^2 {fit.step_fit.r_squared:.4f} on the step observations, per request"
        f" prefill R^2 {fit.prefill.r_squared:.3f} (MAPE {fit.prefill.mean_abs_pct_error:.1f}%),"
        f" decode R^2 {fit.decode.r_squared:.4f} (MAPE {fit.decode.mean_abs_pct_error:.1f}%)"
    )
    if fit.simulated:
        parts = [
            f"{name.upper()} mean {value.mean_error_pct:+.1f}% p90 {value.p90_error_pct:+.1f}%"
            for name, value in fit.simulated.items()
        ]
        text += "; the engine model on the trace's arrivals: " + ", ".join(parts)
    return text


def profile_text(
    calibration: Calibration,
    info: ProfileInfo,
    files: Sequence[str],
    today: datetime.date | None = None,
) -> str:
    """The profile file for ``calibration``."""
    today = today or datetime.date.today()
    step = calibration.step
    overhead = calibration.overhead
    lines = [
        f"# {info.model}: engine step-time profile fitted to vLLM request traces",
        "# by `llmsim calibrate` (see docs/calibration.md).",
    ]
    if calibration.kv_cache_tokens is not None:
        lines.append(
            f"# The traced server's KV cache held {calibration.kv_cache_tokens:,} tokens:"
            " set the scenario's KV cache to match to reproduce its queueing."
        )
    lines += [
        f"name: {_quote(info.name)}",
        f"model: {_quote(info.model)}",
        f"gpu: {_quote(info.gpu)}",
        f"tensor-parallel-size: {info.tensor_parallel_size}",
    ]
    if info.vllm_version:
        lines.append(f"vllm-version: {_quote(info.vllm_version)}")
    lines += [
        f"source: {_quote(source_text(calibration, files, today))}",
        "step-time:",
        f"  base: {format_duration(step.base)}",
        f"  per-prefill-token: {format_duration(step.per_prefill_token)}",
        f"  per-decode-token: {format_duration(step.per_decode_token)}",
        f"  per-context-token: {format_duration(step.per_context_token)}",
        "request-overhead:",
        f"  base: {format_duration(overhead.base)}",
        f"  per-input-token: {format_duration(overhead.per_input_token)}",
        f"  per-output-token: {format_duration(overhead.per_output_token)}",
        "engine:",
        f"  max-num-batched-tokens: {calibration.max_num_batched_tokens}",
        f"  max-num-seqs: {calibration.max_num_seqs}",
    ]
    return "\n".join(lines) + "\n"
