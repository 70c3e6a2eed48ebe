"""The bytes of streamed and non-streamed answers, frame by frame (API-CHAT-4, API-CMPL-3)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support import RunningServer

SCENARIO = """
version: 1
seed: 11
model: {name: m1, max-model-len: 64}
latency: {time-to-first-token: 5ms, inter-token-latency: 1ms}
"""


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


def sse_events(response: httpx.Response) -> list[str]:
    body = response.text
    assert body.endswith("\n\n")
    frames = body.split("\n\n")[:-1]
    assert all(frame.startswith("data: ") for frame in frames)
    return [frame.removeprefix("data: ") for frame in frames]


def post(server: RunningServer, path: str, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json=payload, timeout=10)


def test_chat_stream_frames_in_upstream_order_API_CHAT_4(server: RunningServer) -> None:
    response = post(
        server,
        "/v1/chat/completions",
        {
            "model": "m1",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    role, *tokens, finish, usage = chunks
    assert role["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert len(tokens) == 5
    assert all(set(t["choices"][0]["delta"]) == {"content"} for t in tokens)
    assert all(t["choices"][0]["finish_reason"] is None for t in tokens)
    assert finish["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "length",
    }
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 5
    assert usage["usage"]["prompt_tokens"] == 6
    for chunk in chunks:
        assert chunk["object"] == "chat.completion.chunk"
        assert chunk["model"] == "m1"
        assert chunk["id"] == chunks[0]["id"]
        assert chunk["created"] == chunks[0]["created"]
    assert all(c["usage"] is None for c in chunks[:-1])


def test_chat_stream_without_include_usage_has_no_usage_chunk(server: RunningServer) -> None:
    response = post(
        server,
        "/v1/chat/completions",
        {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    )
    events = sse_events(response)
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(chunk["choices"] for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_completion_stream_frames_API_CMPL_3(server: RunningServer) -> None:
    response = post(
        server,
        "/v1/completions",
        {
            "model": "m1",
            "prompt": "This is a test.",
            "max_tokens": 4,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    *tokens, finish, usage = [json.loads(e) for e in events[:-1]]
    assert len(tokens) == 4
    assert all(t["object"] == "text_completion" for t in tokens)
    assert all(t["choices"][0]["text"] for t in tokens)
    assert finish["choices"][0]["text"] == ""
    assert finish["choices"][0]["finish_reason"] == "length"
    assert usage["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 4,
        "total_tokens": 9,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_non_stream_body_API_CHAT_2(server: RunningServer) -> None:
    body = post(
        server,
        "/v1/chat/completions",
        {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
    ).json()
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    [choice] = body["choices"]
    assert set(choice) == {"index", "message", "logprobs", "finish_reason"}
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


def test_without_max_tokens_the_context_window_bounds_the_answer_GEN_2(
    server: RunningServer,
) -> None:
    for _ in range(20):
        body = post(
            server,
            "/v1/completions",
            {"model": "m1", "prompt": "This is a test."},
        ).json()
        assert 1 <= body["usage"]["completion_tokens"] <= 64 - 5
        if body["usage"]["completion_tokens"] == 59:
            assert body["choices"][0]["finish_reason"] == "length"


def test_finish_reason_is_length_exactly_when_max_tokens_is_reached_GEN_2(
    server: RunningServer,
) -> None:
    for _ in range(30):
        body = post(
            server, "/v1/completions", {"model": "m1", "prompt": "x", "max_tokens": 7}
        ).json()
        tokens = body["usage"]["completion_tokens"]
        assert body["choices"][0]["finish_reason"] == ("length" if tokens == 7 else "stop")


def test_echo_mode_answers_the_last_message_GEN_1(server_factory: ServerFactory) -> None:
    echo = server_factory("version: 1\nmodel: {name: e}\nresponses: {mode: echo}\n")
    messages = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe this"},
                {"type": "image_url", "image_url": {"url": "http://x/cat.png"}},
            ],
        },
    ]
    chat = post(echo, "/v1/chat/completions", {"model": "e", "messages": messages}).json()
    assert chat["choices"][0]["message"]["content"] == "Describe this\nimage: http://x/cat.png"
    assert chat["choices"][0]["finish_reason"] == "stop"
    text = "héllo | wörld `x`"
    completion = post(
        echo, "/v1/completions", {"model": "e", "prompt": text, "max_tokens": 2}
    ).json()
    assert completion["choices"][0]["text"] == text
    assert completion["choices"][0]["finish_reason"] == "length"
