"""``/inference/v1/generate``: token ids in, token ids out, streamed and not (API-GEN-1,
API-PD-2)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support import RunningServer

PATH = "/inference/v1/generate"


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory("version: 1\nseed: 5\nmodel: {name: m}\n")


def post(server: RunningServer, **body: Any) -> httpx.Response:
    payload = {"model": "m", "token_ids": [1, 2, 3], "sampling_params": {"max_tokens": 8}, **body}
    return httpx.post(f"{server.base_url}{PATH}", json=payload, timeout=30)


def chunks(response: httpx.Response) -> list[Any]:
    frames = response.text.strip().split("\n\n")
    assert frames[-1] == "data: [DONE]"
    return [json.loads(frame.removeprefix("data: ")) for frame in frames[:-1]]


def test_answer_is_token_ids_API_GEN_1(server: RunningServer) -> None:
    body = post(server, sampling_params={"max_tokens": 6, "ignore_eos": True}).json()
    [choice] = body["choices"]
    assert body["request_id"] and body["ec_transfer_params"] is None
    assert choice["finish_reason"] == "length" and choice["index"] == 0
    assert len(choice["token_ids"]) == 6 and all(isinstance(i, int) for i in choice["token_ids"])
    detokenized = httpx.post(
        f"{server.base_url}/detokenize", json={"tokens": choice["token_ids"]}, timeout=10
    ).json()["prompt"]
    assert "<unk" not in detokenized


def test_stream_last_token_chunk_carries_the_finish_reason_API_GEN_1(
    server: RunningServer,
) -> None:
    response = post(
        server,
        stream=True,
        stream_options={"include_usage": True},
        sampling_params={"max_tokens": 4, "ignore_eos": True},
    )
    *tokens, usage = chunks(response)
    assert len(tokens) == 4
    assert [c["choices"][0]["finish_reason"] for c in tokens] == [None, None, None, "length"]
    assert all(len(c["choices"][0]["token_ids"]) == 1 for c in tokens)
    assert len({c["request_id"] for c in [*tokens, usage]}) == 1
    assert usage["choices"] == []
    assert usage["usage"]["prompt_tokens"] == 3 and usage["usage"]["completion_tokens"] == 4
    without_usage = chunks(post(server, stream=True))
    assert all(c["choices"] for c in without_usage)
    assert without_usage[-1]["choices"][0]["finish_reason"] in {"stop", "length"}


def test_echo_answers_the_given_ids(server_factory: ServerFactory) -> None:
    echo = server_factory("version: 1\nmodel: {name: m}\nresponses: {mode: echo}\n")
    body = post(echo, token_ids=[7, 8, 9, 10], sampling_params={"max_tokens": 10}).json()
    assert body["choices"][0]["token_ids"] == [7, 8, 9, 10]
    assert body["choices"][0]["finish_reason"] == "stop"
    streamed = chunks(post(echo, token_ids=[7, 8], stream=True))
    assert [c["choices"][0]["token_ids"] for c in streamed] == [[7], [8]]


def test_kv_transfer_params_from_extra_args_API_PD_2(server: RunningServer) -> None:
    extra = {"kv_transfer_params": {"do_remote_decode": True}}
    body = post(server, sampling_params={"max_tokens": 3, "extra_args": extra}).json()
    assert body["choices"][0]["finish_reason"] == "remote_decode"
    assert body["kv_transfer_params"]["do_remote_prefill"] is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"token_ids": None}, "Missing input token_ids"),
        ({"token_ids": []}, "Missing input token_ids"),
        ({"sampling_params": None}, "Missing sampling_params field"),
        ({"sampling_params": {"max_tokens": 0}}, "should be positive"),
        ({"token_ids": [-1]}, "token_ids"),
        ({"token_ids": "abc"}, "token_ids"),
    ],
)
def test_bad_requests_are_400s_API_GEN_1(
    server: RunningServer, body: dict[str, Any], message: str
) -> None:
    response = post(server, **body)
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


def test_unknown_model_is_404(server: RunningServer) -> None:
    assert post(server, model="other").status_code == 404
