import json
from pathlib import Path

import pytest

from llmsim.calibration.traces import TraceError, read_traces
from tests.unit.calibration.support import Span, export, otlp_span, write_trace


def spans() -> list[Span]:
    return [
        Span(2.5, 300, 20, ttft=0.05, e2e=0.4, queue=0.001, prefill=0.02, decode=0.3),
        Span(0.5, 100, 10, ttft=0.03, e2e=0.2, queue=0.0, prefill=0.01, decode=0.15),
        Span(1.0, 200, 1, ttft=0.04, e2e=0.04, queue=0.0, prefill=0.02, decode=0.0),
    ]


def test_spans_become_records_sorted_by_arrival_counted_from_the_first(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "traces.json", spans(), per_line=2)
    records = read_traces([path])
    assert [r.prompt_tokens for r in records] == [100, 200, 300]
    assert [r.arrival for r in records] == pytest.approx([0.0, 0.5, 2.0])
    first = records[0]
    assert (first.completion_tokens, first.max_tokens) == (10, 10)
    assert (first.ttft, first.e2e) == (0.03, 0.2)
    assert (first.queue, first.prefill, first.decode) == (0.0, 0.01, 0.15)
    assert first.itl == pytest.approx((0.2 - 0.03) / 9)
    assert records[1].itl is None
    assert first.source == f"{path}:1"
    assert records[2].source == f"{path}:1"


def test_spans_that_are_not_requests_are_ignored(tmp_path: Path) -> None:
    other = otlp_span(spans()[0], name="http.request")
    document = export([other, otlp_span(spans()[1])])
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(document) + "\n\n")
    records = read_traces([path])
    assert [r.prompt_tokens for r in records] == [100]


def test_several_files_share_one_clock(tmp_path: Path) -> None:
    a = write_trace(tmp_path / "a.json", spans()[:1])
    b = write_trace(tmp_path / "b.json", spans()[1:])
    records = read_traces([a, b])
    assert [r.file for r in records] == [str(b), str(b), str(a)]
    assert records[-1].arrival == pytest.approx(2.0)


def test_a_single_pretty_printed_export_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(export(otlp_span(s) for s in spans()), indent=2))
    assert len(read_traces([path])) == 3


def test_snake_case_keys_and_numeric_ints_are_accepted(tmp_path: Path) -> None:
    span = otlp_span(spans()[0])
    span["start_time_unix_nano"] = int(span.pop("startTimeUnixNano"))
    for attribute in span["attributes"]:
        if "intValue" in attribute["value"]:
            attribute["value"]["intValue"] = int(attribute["value"]["intValue"])
    document = {"resource_spans": [{"scope_spans": [{"spans": [span]}]}]}
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(document))
    (record,) = read_traces([path])
    assert record.prompt_tokens == 300


def test_traces_without_engine_times_are_read_for_replay(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "v0.json", [Span(0.0, 10, 5, 0.1, 0.3, None, None, None)])
    (record,) = read_traces([path])
    assert not record.has_engine_times
    assert record.queue is None


def error_of(path: Path) -> str:
    with pytest.raises(TraceError) as caught:
        read_traces([path])
    assert caught.value.exit_code == 2
    return str(caught.value)


def test_a_line_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = write_trace(tmp_path / "traces.json", spans())
    path.write_text(path.read_text() + "{oops\n")
    assert error_of(path).startswith(f"{path}:4: not JSON: ")


def test_a_file_that_is_not_json_at_all_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\nworld\n")
    message = error_of(path)
    assert message.startswith(f"{path}:1: not JSON")
    assert "OTLP/JSON" in message


def test_json_that_is_not_an_otlp_export_is_named(tmp_path: Path) -> None:
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(export([otlp_span(spans()[0])])) + '\n{"traces": []}\n')
    assert error_of(path) == f"{path}:2: not an OTLP/JSON trace export (no resourceSpans list)"
    path.write_text("[1, 2]\n")
    assert error_of(path) == f"{path}:1: not an OTLP/JSON trace export (a JSON number)"


def test_a_request_span_without_token_counts_is_named(tmp_path: Path) -> None:
    span = otlp_span(spans()[0])
    span["attributes"] = [
        a for a in span["attributes"] if a["key"] != "gen_ai.usage.completion_tokens"
    ]
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(export([span])) + "\n")
    assert error_of(path) == (
        f"{path}:1: span 'llm_request' lacks attribute gen_ai.usage.completion_tokens"
    )


def test_a_file_without_request_spans_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(export([])) + "\n")
    assert "no 'llm_request' span" in error_of(path)
    path.write_text("")
    assert "no 'llm_request' span" in error_of(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    assert error_of(tmp_path / "absent.json") == f"{tmp_path / 'absent.json'}: no such file"
