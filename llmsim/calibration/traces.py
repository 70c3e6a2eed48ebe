"""Reading vLLM's request traces: OTLP/JSON files of ``llm_request`` spans, one record each.

vLLM (``--otlp-traces-endpoint``) exports one span per finished request with its token counts
and latencies; an OpenTelemetry collector's file exporter writes them as OTLP/JSON, one export
per line. This module turns such files into ``TraceRecord`` values sorted by arrival, and says
which file and line is wrong when a file is not such a trace. It does no fitting and no I/O
beyond reading the files; it must not depend on the server or the engine.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUEST_SPAN = "llm_request"

PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"
MAX_TOKENS = "gen_ai.request.max_tokens"
TTFT = "gen_ai.latency.time_to_first_token"
E2E = "gen_ai.latency.e2e"
QUEUE = "gen_ai.latency.time_in_queue"
PREFILL = "gen_ai.latency.time_in_model_prefill"
DECODE = "gen_ai.latency.time_in_model_decode"


class TraceError(Exception):
    """A trace file that cannot be read as vLLM request traces; the message names the file
    (and the line) and says why. The command line exits with ``exit_code``."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class TraceRecord:
    """One request as vLLM traced it. Times are seconds; ``arrival`` counts from the first
    request of the records read together, ``start`` is the span's Unix time."""

    arrival: float
    start: float
    prompt_tokens: int
    completion_tokens: int
    max_tokens: int | None
    ttft: float
    e2e: float
    queue: float | None
    """Engine time from joining the waiting queue to the first schedule (vLLM V1)."""
    prefill: float | None
    """Engine time from the first schedule to the first token."""
    decode: float | None
    """Engine time from the first token to the last."""
    source: str
    """``file:line`` of the span."""

    @property
    def file(self) -> str:
        """The file the span was read from."""
        return self.source.rsplit(":", 1)[0]

    @property
    def itl(self) -> float | None:
        """Mean inter-token latency, ``(e2e - ttft) / (completion_tokens - 1)`` (None for a
        single token)."""
        if self.completion_tokens < 2:
            return None
        return (self.e2e - self.ttft) / (self.completion_tokens - 1)

    @property
    def has_engine_times(self) -> bool:
        """Whether queue, prefill and decode times were traced (vLLM V1)."""
        return self.queue is not None and self.prefill is not None and self.decode is not None


def read_traces(paths: Iterable[Path | str]) -> list[TraceRecord]:
    """The ``llm_request`` spans of every file, sorted by start, arrivals counted from the
    earliest; ``TraceError`` for a file that is not OTLP/JSON or holds no request span."""
    spans: list[TraceRecord] = []
    for path in paths:
        spans.extend(_read_file(Path(path)))
    if not spans:
        raise TraceError("no trace file given")
    return rebase(spans)


def rebase(records: Sequence[TraceRecord]) -> list[TraceRecord]:
    """``records`` sorted by start, with arrivals counted from the earliest start."""
    ordered = sorted(records, key=lambda record: (record.start, record.source))
    first = ordered[0].start if ordered else 0.0
    return [_with_arrival(record, record.start - first) for record in ordered]


def _with_arrival(record: TraceRecord, arrival: float) -> TraceRecord:
    return TraceRecord(
        arrival=arrival,
        start=record.start,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        max_tokens=record.max_tokens,
        ttft=record.ttft,
        e2e=record.e2e,
        queue=record.queue,
        prefill=record.prefill,
        decode=record.decode,
        source=record.source,
    )


def _read_file(path: Path) -> list[TraceRecord]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TraceError(f"{path}: is a directory, not a trace file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from None
    records = [
        record for line, export in _exports(path, text) for record in _requests(path, line, export)
    ]
    if not records:
        raise TraceError(f"{path}: no '{REQUEST_SPAN}' span (is this a vLLM request trace?)")
    return records


def _exports(path: Path, text: str) -> list[tuple[int, Any]]:
    """``(line, export)`` for each OTLP export of the file: one JSON document per line (the
    collector's file exporter), or a single document (an object, or a list of objects)."""
    documents: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            documents.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            if documents:
                raise TraceError(f"{path}:{number}: not JSON: {exc.msg}") from None
            return _whole_document(path, text, number, exc)
    exports: list[tuple[int, Any]] = []
    for number, document in documents:
        items = document if isinstance(document, list) else [document]
        exports.extend((number, item) for item in items)
    return exports


def _whole_document(
    path: Path, text: str, first_line: int, line_error: json.JSONDecodeError
) -> list[tuple[int, Any]]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        message = f"{path}:{first_line}: not JSON: {line_error.msg}"
        raise TraceError(message + " (expected OTLP/JSON, one export per line)") from None
    items = document if isinstance(document, list) else [document]
    return [(first_line, item) for item in items]


def _field(mapping: Mapping[str, Any], camel: str, snake: str) -> Any:
    return mapping.get(camel, mapping.get(snake))


def _requests(path: Path, line: int, export: Any) -> Iterator[TraceRecord]:
    where = f"{path}:{line}"
    if not isinstance(export, Mapping):
        raise TraceError(f"{where}: not an OTLP/JSON trace export (a JSON {_kind(export)})")
    resource_spans = _field(export, "resourceSpans", "resource_spans")
    if not isinstance(resource_spans, list):
        raise TraceError(f"{where}: not an OTLP/JSON trace export (no resourceSpans list)")
    for resource in resource_spans:
        scopes = (
            _field(resource, "scopeSpans", "scope_spans") if isinstance(resource, Mapping) else None
        )
        for scope in scopes if isinstance(scopes, list) else ():
            spans = scope.get("spans") if isinstance(scope, Mapping) else None
            for span in spans if isinstance(spans, list) else ():
                if isinstance(span, Mapping) and span.get("name") == REQUEST_SPAN:
                    yield _record(where, span)


def _kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


def _record(where: str, span: Mapping[str, Any]) -> TraceRecord:
    attributes = _attributes(where, span)
    start = _field(span, "startTimeUnixNano", "start_time_unix_nano")
    try:
        start_ns = int(start)
    except (TypeError, ValueError):
        raise TraceError(f"{where}: span '{REQUEST_SPAN}' has no startTimeUnixNano") from None

    def number(key: str, required: bool = True) -> float | None:
        value = attributes.get(key)
        if value is None:
            if required:
                raise TraceError(f"{where}: span '{REQUEST_SPAN}' lacks attribute {key}")
            return None
        try:
            result = float(value)
        except (TypeError, ValueError):
            raise TraceError(f"{where}: attribute {key} is not a number: {value!r}") from None
        if result != result or result < 0:
            raise TraceError(f"{where}: attribute {key} must be a non-negative number")
        return result

    def whole(key: str, required: bool = True) -> int | None:
        value = number(key, required)
        return None if value is None else int(value)

    prompt = whole(PROMPT_TOKENS)
    completion = whole(COMPLETION_TOKENS)
    ttft = number(TTFT)
    e2e = number(E2E)
    assert prompt is not None and completion is not None and ttft is not None and e2e is not None
    return TraceRecord(
        arrival=0.0,
        start=start_ns / 1e9,
        prompt_tokens=prompt,
        completion_tokens=completion,
        max_tokens=whole(MAX_TOKENS, required=False),
        ttft=ttft,
        e2e=e2e,
        queue=number(QUEUE, required=False),
        prefill=number(PREFILL, required=False),
        decode=number(DECODE, required=False),
        source=where,
    )


def _attributes(where: str, span: Mapping[str, Any]) -> dict[str, Any]:
    """A span's attributes as plain values (OTLP's typed ``AnyValue`` unwrapped)."""
    raw = span.get("attributes", [])
    if not isinstance(raw, list):
        raise TraceError(f"{where}: span attributes are not a list of key/value pairs")
    attributes: dict[str, Any] = {}
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise TraceError(f"{where}: span attribute without a key: {item!r}")
        value = item.get("value")
        if isinstance(value, Mapping) and value:
            attributes[item["key"]] = next(iter(value.values()))
        else:
            attributes[item["key"]] = value
    return attributes
