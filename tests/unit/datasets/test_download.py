import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llmsim.datasets import DatasetError, ensure_dataset

BODY = b"SQLite format 3\x00" + bytes(range(256)) * 40


class LocalServer:
    """An HTTP server on 127.0.0.1 that records the paths it was asked for."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                if self.path == "/data.sqlite3":
                    self._answer(200, BODY)
                elif self.path == "/empty":
                    self._answer(200, b"")
                elif self.path == "/short":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"only this")
                    self.close_connection = True
                else:
                    self._answer(404, b"not here")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def running_server() -> Iterator[LocalServer]:
    running = LocalServer()
    yield running
    running.stop()


@pytest.fixture
def server(running_server: LocalServer) -> LocalServer:
    running_server.requests.clear()
    return running_server


def test_missing_file_is_downloaded_into_place_DS_4(tmp_path: Path, server: LocalServer) -> None:
    target = tmp_path / "cache" / "dataset.sqlite3"
    got = ensure_dataset(target, f"{server.url}/data.sqlite3", progress=False)
    assert got == target
    assert target.read_bytes() == BODY
    assert server.requests == ["/data.sqlite3"]
    assert [p.name for p in target.parent.iterdir()] == ["dataset.sqlite3"]


def test_download_with_progress_bar_on_stderr(
    tmp_path: Path, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "dataset.sqlite3"
    ensure_dataset(target, f"{server.url}/data.sqlite3", progress=True)
    captured = capsys.readouterr()
    assert target.read_bytes() == BODY
    assert captured.out == ""
    assert "downloading" in captured.err


def test_existing_file_is_used_without_a_request_DS_4(tmp_path: Path, server: LocalServer) -> None:
    target = tmp_path / "dataset.sqlite3"
    target.write_bytes(b"already here")
    assert ensure_dataset(target, f"{server.url}/data.sqlite3", progress=False) == target
    assert target.read_bytes() == b"already here"
    assert server.requests == []


def test_not_found_is_an_error_naming_url_and_status_DS_4(
    tmp_path: Path, server: LocalServer
) -> None:
    target = tmp_path / "dataset.sqlite3"
    url = f"{server.url}/missing.sqlite3"
    with pytest.raises(DatasetError) as caught:
        ensure_dataset(target, url, progress=False)
    assert url in str(caught.value) and "404" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_empty_body_is_an_error_DS_4(tmp_path: Path, server: LocalServer) -> None:
    with pytest.raises(DatasetError, match="empty body"):
        ensure_dataset(tmp_path / "dataset.sqlite3", f"{server.url}/empty", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_cut_off_body_is_an_error(tmp_path: Path, server: LocalServer) -> None:
    with pytest.raises(DatasetError, match="/short"):
        ensure_dataset(tmp_path / "dataset.sqlite3", f"{server.url}/short", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_no_file_and_no_url_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no dataset URL"):
        ensure_dataset(tmp_path / "dataset.sqlite3", None, progress=False)


def test_only_http_urls_are_fetched(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("x")
    with pytest.raises(DatasetError, match="only http and https"):
        ensure_dataset(tmp_path / "dataset.sqlite3", secret.as_uri(), progress=False)
