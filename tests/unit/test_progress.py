"""Progress of ``llmsim dataset download`` and ``convert``: callbacks, the bar on a terminal,
one plain line elsewhere, and INFO logs for the server's start-up download."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmsim.datasets.cli import app
from llmsim.datasets.convert import convert
from llmsim.datasets.download import TerminalProgress, _LogProgress, ensure_dataset
from llmsim.engine.tokenizer import SimulatedTokenizer

BODY = bytes(range(256)) * 12_000
"""3 MB: three read chunks, so progress is reported more than once."""

ITEMS = [
    {
        "conversations": [
            {"from": "human", "value": f"Question number {i}?"},
            {"from": "gpt", "value": f"Answer number {i}."},
        ]
    }
    for i in range(7)
]


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class Recorder:
    """A progress callback that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None]] = []

    def __call__(self, done: int, total: int | None) -> None:
        self.calls.append((done, total))


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """A loopback HTTP server: /data (with Content-Length) and /unsized (without)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in ("/data", "/unsized"):
                self.send_error(404)
                return
            self.send_response(200)
            if self.path == "/data":
                self.send_header("Content-Length", str(len(BODY)))
            else:
                self.close_connection = True
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(ITEMS))
    return path


def assert_climbs_to(calls: list[tuple[int, int | None]], end: int, total: int | None) -> None:
    assert calls[0] == (0, total)
    assert calls[-1] == (end, total)
    done = [d for d, _ in calls]
    assert done == sorted(done)
    assert {t for _, t in calls} == {total}


# --- callbacks ------------------------------------------------------------------------------


def test_download_reports_bytes_and_the_content_length(tmp_path: Path, base_url: str) -> None:
    recorder = Recorder()
    ensure_dataset(tmp_path / "d.sqlite3", f"{base_url}/data", progress=recorder)
    assert (tmp_path / "d.sqlite3").read_bytes() == BODY
    assert_climbs_to(recorder.calls, len(BODY), len(BODY))
    assert len(recorder.calls) >= 3


def test_download_without_content_length_reports_an_unknown_total(
    tmp_path: Path, base_url: str
) -> None:
    recorder = Recorder()
    ensure_dataset(tmp_path / "d.sqlite3", f"{base_url}/unsized", progress=recorder)
    assert (tmp_path / "d.sqlite3").read_bytes() == BODY
    assert_climbs_to(recorder.calls, len(BODY), None)


def test_convert_reports_conversations(tmp_path: Path, source: Path) -> None:
    recorder = Recorder()
    summary = convert(source, tmp_path / "out.sqlite3", SimulatedTokenizer(), progress=recorder)
    assert summary.rows == 2 * len(ITEMS)
    assert_climbs_to(recorder.calls, len(ITEMS), len(ITEMS))


def test_library_calls_print_nothing_by_default(
    tmp_path: Path, source: Path, base_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    convert(source, tmp_path / "out.sqlite3", SimulatedTokenizer())
    ensure_dataset(tmp_path / "d.sqlite3", f"{base_url}/data")
    assert capsys.readouterr() == ("", "")


# --- the bar on a terminal --------------------------------------------------------------------


@pytest.fixture
def terminal_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide, capable terminal, whatever the environment running the tests says."""
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "120")
    for name in ("TTY_COMPATIBLE", "TTY_INTERACTIVE", "LINES"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("terminal_env")
def test_a_terminal_gets_a_bar_for_a_download(tmp_path: Path, base_url: str) -> None:
    terminal = FakeTerminal()
    with TerminalProgress("downloading data", "bytes", stream=terminal) as bar:
        ensure_dataset(tmp_path / "d.sqlite3", f"{base_url}/data", progress=bar)
    shown = terminal.getvalue()
    assert "downloading data" in shown
    assert "3.1/3.1 MB" in shown  # done/total from Content-Length
    assert "\r" in shown or "\x1b[" in shown  # redrawn in place


@pytest.mark.usefixtures("terminal_env")
def test_a_terminal_gets_a_bar_for_a_conversion(tmp_path: Path, source: Path) -> None:
    terminal = FakeTerminal()
    with TerminalProgress("converting", "conversations", stream=terminal) as bar:
        convert(source, tmp_path / "out.sqlite3", SimulatedTokenizer(), progress=bar)
    shown = terminal.getvalue()
    assert "converting" in shown
    assert f"{len(ITEMS)}/{len(ITEMS)}" in shown and "conversations" in shown


def test_closing_an_unused_bar_writes_nothing() -> None:
    terminal = FakeTerminal()
    TerminalProgress("idle", stream=terminal).close()
    assert terminal.getvalue() == ""


# --- elsewhere: one plain line ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "total", "line"),
    [
        ("bytes", 3_072_000, "working: 3.1 MB\n"),
        ("bytes", None, "working: size unknown\n"),
        ("items", 12, "working: 12 items\n"),
    ],
)
def test_a_stream_that_is_not_a_terminal_gets_one_plain_line(
    unit: str, total: int | None, line: str
) -> None:
    stream = io.StringIO()
    with TerminalProgress("working", unit, stream=stream) as progress:
        for done in range(0, 11):
            progress(done, total)
    assert stream.getvalue() == line


def test_progress_true_is_one_clean_line_on_stderr_when_not_a_terminal(
    tmp_path: Path, source: Path, base_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ensure_dataset(tmp_path / "d.sqlite3", f"{base_url}/data", progress=True)
    convert(source, tmp_path / "out.sqlite3", SimulatedTokenizer(), progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"downloading {base_url}/data: 3.1 MB\nconverting: {len(ITEMS)} conversations\n"


# --- the CLI, as in CI logs and pipes ---------------------------------------------------------


def test_cli_download_and_convert_keep_logs_clean(
    tmp_path: Path, source: Path, base_url: str
) -> None:
    runner = CliRunner()
    target = tmp_path / "d.sqlite3"
    fetched = runner.invoke(app, ["download", f"{base_url}/data", str(target)])
    assert fetched.exit_code == 0, fetched.output
    assert fetched.stdout == f"downloaded {base_url}/data to {target} (3.1 MB)\n"
    assert fetched.stderr == f"downloading {base_url}/data: 3.1 MB\n"
    assert target.read_bytes() == BODY

    converted = runner.invoke(app, ["convert", str(source), str(tmp_path / "out.sqlite3")])
    assert converted.exit_code == 0, converted.output
    assert converted.stdout.startswith(f"wrote {2 * len(ITEMS)} rows")
    assert converted.stderr == f"converting: {len(ITEMS)} conversations\n"
    for text in (fetched.stderr, converted.stderr):
        assert "\r" not in text and "\x1b" not in text


def test_cli_download_keeps_an_existing_file_unless_told(tmp_path: Path, base_url: str) -> None:
    runner = CliRunner()
    target = tmp_path / "d.sqlite3"
    target.write_bytes(b"keep me")
    refused = runner.invoke(app, ["download", f"{base_url}/data", str(target)])
    assert refused.exit_code == 1
    assert "already exists" in refused.stderr
    assert target.read_bytes() == b"keep me"

    failed = runner.invoke(app, ["download", f"{base_url}/missing", str(target), "--overwrite"])
    assert failed.exit_code == 1
    assert "404" in failed.stderr
    assert target.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.sqlite3"]

    replaced = runner.invoke(app, ["download", f"{base_url}/data", str(target), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert target.read_bytes() == BODY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.sqlite3"]


# --- the server's start-up download: INFO logs --------------------------------------------------


def test_start_up_download_logs_every_ten_percent(
    tmp_path: Path, base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="llmsim.datasets.download"):
        ensure_dataset(tmp_path / "d.sqlite3", f"{base_url}/data")
    messages = [r.getMessage() for r in caplog.records]
    assert all(r.levelno == logging.INFO for r in caplog.records)
    assert any("0% (0 B of 3.1 MB)" in m for m in messages)
    assert any("100% (3.1 MB of 3.1 MB)" in m for m in messages)


def test_log_progress_steps() -> None:
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("llmsim.datasets.download")
    handler = Collect(logging.INFO)
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        sized = _LogProgress("http://x/d")
        for done in range(0, 1001, 7):  # 144 calls ...
            sized(done, 1000)
        sized(1000, 1000)
        assert len(records) == 11  # ... 0%, 10%, ..., 100%
        assert records[-1].endswith("100% (1.0 kB of 1.0 kB)")
        records.clear()
        unsized = _LogProgress("http://x/d")
        for done in range(0, 350_000_001, 10_000_000):
            unsized(done, None)
        assert [r.split(": ")[1] for r in records] == [
            "100.0 MB (size unknown)",
            "200.0 MB (size unknown)",
            "300.0 MB (size unknown)",
        ]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
