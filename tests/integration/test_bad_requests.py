"""Bad requests get a 4xx OpenAI error body, never a 500 (ERR-1, ERR-2, ERR-3, ERR-4)."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support import RunningServer

SCENARIO = "version: 1\nmodel: {name: m, max-model-len: 100}\n"
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
USER = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


def assert_error(response: httpx.Response, status: int, *fragments: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == status
    for fragment in fragments:
        assert fragment in error["message"]
    return error


@pytest.mark.parametrize(
    ("path", "content", "fragment"),
    [
        (CHAT, b'{"model": "m", "messages": [', "Failed to read and parse request body"),
        (CHAT, b"not json at all", "Failed to read and parse request body"),
        (CHAT, b"", "Failed to read and parse request body"),
        (CHAT, b"[1, 2]", "must be a JSON object"),
        (CHAT, b"\xff\xfe{}", "Failed to read and parse request body"),
        (CHAT, b'{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1e400}', ""),
        (CHAT, b'{"model":"m","messages":[{"role":"user","content":"\xc3\x28"}]}', ""),
        (COMPLETIONS, b'{"model": "m", "prompt": "x"', "Failed to read and parse request body"),
    ],
)
def test_malformed_bodies_are_400(
    server: RunningServer, path: str, content: bytes, fragment: str
) -> None:
    response = httpx.post(server.base_url + path, content=content)
    error = assert_error(response, 400, fragment)
    assert error["type"] == "BadRequestError"


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"messages": USER}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages must not be empty"),
        ({"model": "m", "messages": "hello"}, "messages"),
        ({"model": "m", "messages": [{"content": "x"}]}, "role"),
        ({"model": "m", "messages": [{"role": "user", "content": 5}]}, "content"),
        ({"model": 3, "messages": USER}, "model"),
        ({"model": "m", "messages": USER, "max_tokens": "many"}, "max_tokens"),
        ({"model": "m", "messages": USER, "max_tokens": 0}, "should be positive"),
        ({"model": "m", "messages": USER, "max_tokens": -5}, "should be positive"),
        ({"model": "m", "messages": USER, "max_completion_tokens": 0}, "should be positive"),
        ({"model": "m", "messages": USER, "max_tokens": 10**30}, "maximum context length is 100"),
        ({"model": "m", "messages": USER, "max_tokens": 1.5}, "max_tokens"),
        ({"model": "m", "messages": USER, "n": 0}, "n must be at least 1"),
        ({"model": "m", "messages": USER, "n": -1}, "n must be at least 1"),
        ({"model": "m", "messages": USER, "stream": "maybe"}, "stream"),
        ({"model": "m", "messages": USER, "stream_options": 3}, "stream_options"),
        ({"model": "m", "messages": USER, "ignore_eos": True}, "Ignore_eos is true"),
    ],
)
def test_invalid_chat_fields_are_400(
    server: RunningServer, payload: dict[str, object], fragment: str
) -> None:
    assert_error(httpx.post(server.base_url + CHAT, json=payload), 400, fragment)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"model": "m"}, "prompt"),
        ({"model": "m", "prompt": ""}, "must not contain an empty string"),
        ({"model": "m", "prompt": []}, "at least one prompt"),
        ({"model": "m", "prompt": {"text": "x"}}, "prompt"),
        ({"model": "m", "prompt": "x", "max_tokens": -1}, "should be positive"),
    ],
)
def test_invalid_completion_fields_are_400(
    server: RunningServer, payload: dict[str, object], fragment: str
) -> None:
    assert_error(httpx.post(server.base_url + COMPLETIONS, json=payload), 400, fragment)


def test_context_window_error_has_upstream_text_ERR_3(server: RunningServer) -> None:
    response = httpx.post(
        server.base_url + CHAT, json={"model": "m", "messages": USER, "max_tokens": 95}
    )
    assert_error(
        response,
        400,
        "This model's maximum context length is 100 tokens. However, you requested 101 tokens "
        "(6 in the messages, 95 in the completion). Please reduce the length of the messages or "
        "completion",
    )


def test_unknown_model_is_404_with_upstream_text(server: RunningServer) -> None:
    for path, payload in (
        (CHAT, {"model": "gpt-4", "messages": USER}),
        (COMPLETIONS, {"model": "gpt-4", "prompt": "x"}),
    ):
        error = assert_error(
            httpx.post(server.base_url + path, json=payload),
            404,
            "The model `gpt-4` does not exist.",
        )
        assert error["type"] == "NotFoundError"


def test_streamed_request_errors_keep_their_status_PIPE_3(server: RunningServer) -> None:
    response = httpx.post(
        server.base_url + CHAT, json={"model": "nope", "messages": USER, "stream": True}
    )
    assert_error(response, 404, "does not exist")


def test_unknown_fields_are_ignored(server: RunningServer) -> None:
    response = httpx.post(
        server.base_url + CHAT,
        json={"model": "m", "messages": USER, "temperature": 0.3, "frobnicate": {"x": 1}},
    )
    assert response.status_code == 200


GENERATION_PATHS = [CHAT, COMPLETIONS, "/v1/responses", "/v1/messages", "/inference/v1/generate"]


@pytest.mark.parametrize("path", GENERATION_PATHS)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_json_by_content_type_is_400(
    server: RunningServer, path: str, content_type: str
) -> None:
    response = httpx.post(
        server.base_url + path,
        content=b'{"model": "m", "prompt": "x", "messages": [], "input": "x"}',
        headers={"content-type": content_type},
    )
    assert response.status_code == 400
    body = response.json()
    error = body["error"]
    assert "must be JSON" in error["message"] and content_type in error["message"]
    if path == "/v1/messages":  # Anthropic's error shape
        assert body["type"] == "error" and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "content_type", [None, "application/json; charset=utf-8", "application/vnd.api+json"]
)
def test_json_content_types_and_none_are_read_as_json(
    server: RunningServer, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = b'{"model": "m", "messages": [{"role": "user", "content": "hello"}]}'
    response = httpx.post(server.base_url + CHAT, content=body, headers=headers)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "content",
    [
        b'{"model": "m", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
        b'{"model": "m", "messages": ['
        + b",".join([b'{"role":"user","content":"x"}'] * 50_000)
        + b"]}",
        b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": ['
        + b",".join([b"{}"] * 200_000)
        + b"]}",
    ],
    ids=["deeply nested array", "deeply nested object", "50k messages", "200k tools"],
)
def test_deep_or_huge_json_is_a_4xx_not_a_crash(server: RunningServer, content: bytes) -> None:
    response = httpx.post(server.base_url + CHAT, content=content, timeout=60)
    assert 400 <= response.status_code < 500, response.text[:200]
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(server.base_url + "/health").status_code == 200


def test_oversized_body_is_413_DIFF_4(server: RunningServer) -> None:
    big = "x" * (5 * 1024 * 1024)
    response = httpx.post(
        server.base_url + CHAT,
        json={"model": "m", "messages": [{"role": "user", "content": big}]},
    )
    assert_error(response, 413, "larger than the limit")


def test_wrong_method_is_405_and_unknown_path_is_404(server: RunningServer) -> None:
    assert_error(httpx.get(server.base_url + CHAT), 405)
    assert_error(httpx.get(server.base_url + "/v1/nothing-here"), 404)
    assert_error(httpx.delete(server.base_url + "/v1/models"), 405)


def test_server_keeps_serving_after_bad_requests(server: RunningServer) -> None:
    for _ in range(20):
        httpx.post(server.base_url + CHAT, content=b"{{{")
    ok = httpx.post(server.base_url + CHAT, json={"model": "m", "messages": USER})
    assert ok.status_code == 200
    assert httpx.get(server.base_url + "/health").status_code == 200


RAW_BODY = b'{"model":"m","messages":[{"role":"user","content":"hello"}]}'


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"HTTP/1.1\r\nContent-Length: %d\r\n\r\n%s" % (len(RAW_BODY), RAW_BODY), 200),
        (b"HTTP/1.0\r\nContent-Length: %d\r\n\r\n%s" % (len(RAW_BODY), RAW_BODY), 200),
        (
            b"HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
            % (len(RAW_BODY), RAW_BODY),
            200,
        ),
        (b"HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\r\n", 400),
    ],
    ids=["no Host, no Content-Type", "HTTP/1.0", "chunked upload", "no body at all"],
)
def test_requests_missing_headers_or_body_get_a_clear_answer(
    server: RunningServer, head: bytes, status: int
) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(b"POST " + CHAT.encode() + b" " + head)
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    assert int(status_line.split()[1]) == status
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert ("choices" in body) if status == 200 else (body["error"]["code"] == status)
