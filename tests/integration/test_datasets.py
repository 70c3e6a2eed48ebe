"""Answers from a converted dataset, through the CLI and the running server (DS-*)."""

from __future__ import annotations

import functools
import http.server
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmsim.datasets.store import DEFAULT_TABLE
from tests.conftest import ServerFactory
from tests.support import PROJECT_ROOT, RunningServer

SHAREGPT = [
    {
        "id": "a",
        "conversations": [
            {"from": "human", "value": "What is the capital of France?"},
            {"from": "gpt", "value": "The capital of France is Paris, a city on the Seine."},
        ],
    },
    {
        "id": "b",
        "conversations": [
            {"from": "human", "value": "Name three colours."},
            {"from": "gpt", "value": "Red, green and blue."},
        ],
    },
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dataset")
    source = folder / "chats.jsonl"
    source.write_text("\n".join(json.dumps(item) for item in SHAREGPT) + "\n{broken\n")
    output = folder / "chats.sqlite3"
    result = subprocess.run(
        [sys.executable, "-m", "llmsim", "dataset", "convert", str(source), str(output)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote 4 rows to {output} (skipped 1,")
    return output


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory, dataset: Path) -> RunningServer:
    return server_factory(
        f"version: 1\nseed: 4\nmodel: {{name: m}}\nresponses: {{dataset: {{path: '{dataset}'}}}}\n"
    )


def ask(server: RunningServer, path: str, body: dict[str, object]) -> dict[str, object]:
    response = httpx.post(f"{server.base_url}{path}", json={"model": "m", **body}, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_known_prompts_answer_their_recorded_reply_DS_2_DS_3(server: RunningServer) -> None:
    chat = ask(
        server,
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "What is the capital of France?"}]},
    )
    assert chat["choices"][0]["message"]["content"] == (  # type: ignore[index]
        "The capital of France is Paris, a city on the Seine."
    )
    completion = ask(server, "/v1/completions", {"prompt": "Name three colours."})
    assert completion["choices"][0]["text"] == "Red, green and blue."  # type: ignore[index]
    assert completion["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]


def test_recorded_reply_is_trimmed_to_max_tokens_DS_3(server: RunningServer) -> None:
    body = ask(server, "/v1/completions", {"prompt": "Name three colours.", "max_tokens": 3})
    assert body["choices"][0]["text"] == "Red, green "  # type: ignore[index]
    assert body["choices"][0]["finish_reason"] == "length"  # type: ignore[index]


def test_unknown_prompts_get_a_dataset_reply_within_the_limit_DS_3(server: RunningServer) -> None:
    replies = {"The capital of France is Paris, a city on the Seine.", "Red, green and blue."}
    for _ in range(10):
        body = ask(
            server, "/v1/completions", {"prompt": "Something else entirely", "max_tokens": 20}
        )
        text = body["choices"][0]["text"]  # type: ignore[index]
        assert body["usage"]["completion_tokens"] <= 20  # type: ignore[index]
        assert text in replies or any(reply.startswith(text) for reply in replies)


@pytest.fixture
def file_server(dataset: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(dataset.parent))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/{dataset.name}"
    finally:
        httpd.shutdown()


def test_dataset_url_is_downloaded_when_the_file_is_missing_DS_4(
    server_factory: ServerFactory, file_server: str, tmp_path: Path
) -> None:
    target = tmp_path / "downloaded.sqlite3"
    server = server_factory(
        "version: 1\nmodel: {name: m}\n"
        f"responses: {{dataset: {{path: '{target}', url: '{file_server}', in-memory: true}}}}\n"
    )
    assert target.exists()
    body = ask(server, "/v1/completions", {"prompt": "Name three colours."})
    assert body["choices"][0]["text"] == "Red, green and blue."  # type: ignore[index]


def test_a_broken_dataset_is_a_clear_startup_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.sqlite3"
    broken.write_text("not a database")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"version: 1\nresponses: {{dataset: {{path: '{broken}'}}}}\n")
    result = subprocess.run(
        [sys.executable, "-m", "llmsim", "run", str(scenario), "--port", "1"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert result.returncode == 1
    assert "broken.sqlite3" in result.stderr


def test_a_dataset_removed_or_damaged_at_run_time_degrades_with_a_warning(
    server_factory: ServerFactory, dataset: Path, tmp_path: Path
) -> None:
    own = tmp_path / "own.sqlite3"
    own.write_bytes(dataset.read_bytes())
    server = server_factory(
        f"version: 1\nseed: 4\nmodel: {{name: m}}\nresponses: {{dataset: {{path: '{own}'}}}}\n"
    )
    question = {"messages": [{"role": "user", "content": "Name three colours."}]}
    recorded = "Red, green and blue."
    assert ask(server, "/v1/chat/completions", question)["choices"][0]["message"]["content"] == (
        recorded
    )
    own.unlink()  # the open file keeps answering
    assert ask(server, "/v1/chat/completions", question)["choices"][0]["message"]["content"] == (
        recorded
    )
    own.write_bytes(b"")  # a new, empty file: the server still reads the one it opened
    answer = ask(server, "/v1/chat/completions", question)
    assert answer["choices"][0]["message"]["content"] == recorded
    server.stop()
    assert server.process.stderr is not None
    assert "Traceback" not in server.process.stderr.read().decode()


def test_a_row_that_cannot_be_read_answers_built_in_text_with_a_warning(
    server_factory: ServerFactory, dataset: Path, tmp_path: Path
) -> None:
    own = tmp_path / "own.sqlite3"
    own.write_bytes(dataset.read_bytes())
    with sqlite3.connect(own) as db:
        db.execute(f"UPDATE {DEFAULT_TABLE} SET gen_tokens = '{{broken'")
    db.close()
    server = server_factory(
        f"version: 1\nseed: 4\nmodel: {{name: m}}\nresponses: {{dataset: {{path: '{own}'}}}}\n"
    )
    question = {"messages": [{"role": "user", "content": "Name three colours."}]}
    for _ in range(3):
        answer = ask(server, "/v1/chat/completions", question)
        assert answer["choices"][0]["message"]["content"]
    server.stop()
    assert server.process.stderr is not None
    log = server.process.stderr.read().decode()
    assert log.count("answering with built-in text") == 2  # after the 1st and the 2nd failure
    assert "cannot read gen_tokens" in log and "Traceback" not in log
