"""Synthetic vLLM request traces for the calibration tests: OTLP/JSON spans written from known
timings, and traces made by running the engine model with known coefficients."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmsim.calibration.simulate import (
    OverheadCoefficients,
    SimRequest,
    SimResult,
    StepCoefficients,
    simulate,
)

EPOCH = 1_769_000_000.0
"""Unix time of the synthetic runs' first arrival."""


@dataclass(frozen=True)
class Span:
    """One traced request: its arrival (seconds from the run's start) and its figures."""

    arrival: float
    prompt_tokens: int
    completion_tokens: int
    ttft: float
    e2e: float
    queue: float | None = 0.0
    prefill: float | None = 0.0
    decode: float | None = 0.0


def otlp_span(span: Span, name: str = "llm_request") -> dict[str, Any]:
    """The span as vLLM's OTLP exporter writes it."""
    start_ns = round((EPOCH + span.arrival) * 1e9)
    attributes: list[dict[str, Any]] = [
        {"key": "gen_ai.usage.prompt_tokens", "value": {"intValue": str(span.prompt_tokens)}},
        {
            "key": "gen_ai.usage.completion_tokens",
            "value": {"intValue": str(span.completion_tokens)},
        },
        {"key": "gen_ai.request.max_tokens", "value": {"intValue": str(span.completion_tokens)}},
        {"key": "gen_ai.latency.time_to_first_token", "value": {"doubleValue": span.ttft}},
        {"key": "gen_ai.latency.e2e", "value": {"doubleValue": span.e2e}},
        {"key": "gen_ai.request.id", "value": {"stringValue": f"cmpl-{start_ns}"}},
    ]
    for key, value in (
        ("time_in_queue", span.queue),
        ("time_in_model_prefill", span.prefill),
        ("time_in_model_decode", span.decode),
    ):
        if value is not None:
            attributes.append({"key": f"gen_ai.latency.{key}", "value": {"doubleValue": value}})
    return {
        "traceId": f"{start_ns:032x}",
        "spanId": f"{start_ns % 2**64:016x}",
        "name": name,
        "kind": 2,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + round(span.e2e * 1e9)),
        "attributes": attributes,
        "status": {},
    }


def export(spans: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One OTLP/JSON export holding ``spans``."""
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "vllm"}}]
                },
                "scopeSpans": [{"scope": {"name": "vllm.llm_engine"}, "spans": list(spans)}],
            }
        ]
    }


def write_trace(path: Path, spans: Sequence[Span], per_line: int = 1) -> Path:
    """Write ``spans`` as an OTLP/JSON file, ``per_line`` spans per export (line)."""
    lines = [
        json.dumps(export(otlp_span(s) for s in spans[i : i + per_line]))
        for i in range(0, len(spans), per_line)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def span_of(request: SimRequest, result: SimResult) -> Span:
    """What vLLM would trace for a request the engine model ran."""
    return Span(
        arrival=request.arrival,
        prompt_tokens=request.prompt_tokens,
        completion_tokens=request.output_tokens,
        ttft=result.ttft,
        e2e=result.e2e,
        queue=result.queue,
        prefill=result.prefill,
        decode=result.decode,
    )


def workload(seed: int = 1, count: int = 200) -> list[SimRequest]:
    """Requests in phases, as a load generator's sweep makes them: one at a time, bursts,
    steady streams; prompts of 20 to 6000 tokens, outputs of 1 to 300."""
    rng = random.Random(seed)
    requests = []
    now = 0.0
    for index in range(count):
        phase = (index // 25) % 4
        if index:
            if phase == 0:
                now += rng.uniform(0.5, 1.5)
            elif phase == 1:
                now += rng.uniform(0.0, 0.02)
            elif phase == 2:
                now += rng.uniform(0.05, 0.3)
            else:
                now += rng.expovariate(5.0)
        requests.append(SimRequest(now, rng.randint(20, 6000), rng.randint(1, 300)))
    return requests


TRUE_STEP = StepCoefficients(
    base=0.006, per_prefill_token=20e-6, per_decode_token=150e-6, per_context_token=0.2e-6
)
TRUE_OVERHEAD = OverheadCoefficients(base=0.002, per_input_token=0.5e-6, per_output_token=0.0)


def simulated_trace(
    path: Path,
    step: StepCoefficients = TRUE_STEP,
    overhead: OverheadCoefficients = TRUE_OVERHEAD,
    budget: int = 4096,
    max_num_seqs: int = 64,
    seed: int = 1,
    count: int = 200,
) -> list[Span]:
    """Run the engine model on ``workload`` and write what vLLM would have traced."""
    requests = workload(seed, count)
    results = simulate(requests, step, overhead, budget, max_num_seqs)
    spans = [span_of(r, s) for r, s in zip(requests, results, strict=True)]
    write_trace(path, spans, per_line=3)
    return spans
