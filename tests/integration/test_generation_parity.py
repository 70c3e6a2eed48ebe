"""Generation and API details at upstream parity (GEN-*, API-CHAT-*, API-CMPL-*, LP-*, SCHED-3)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import httpx
import openai
import pytest

from llmsim.engine.logprobs import token_logprob
from llmsim.engine.text import SENTENCES
from tests.conftest import ServerFactory
from tests.support import RunningServer

SCENARIO = (
    "version: 1\nseed: 3\nmodel: {name: m, max-model-len: 2048}\nengine: {max-num-seqs: 64}\n"
)
USER = [{"role": "user", "content": "This is a test."}]


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


def post(server: RunningServer, path: str, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}{path}", json={"model": "m", **payload}, timeout=30)


def chunks(response: httpx.Response) -> list[dict[str, Any]]:
    frames = [f.removeprefix("data: ") for f in response.text.split("\n\n") if f]
    assert frames[-1] == "[DONE]"
    return [json.loads(f) for f in frames[:-1]]


def test_histogram_shapes_lengths_through_the_server_GEN_3(server: RunningServer) -> None:
    async def lengths() -> list[int]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:

            async def one() -> int:
                r = await client.post(
                    "/v1/completions", json={"model": "m", "prompt": "x", "max_tokens": 60}
                )
                return int(r.json()["usage"]["completion_tokens"])

            return list(await asyncio.gather(*(one() for _ in range(600))))

    seen = Counter(asyncio.run(lengths()))
    n = sum(seen.values())
    assert seen[60] / n == pytest.approx(0.15, abs=0.05)
    assert sum(seen[i] for i in range(1, 12)) / n == pytest.approx(0.20, abs=0.05)
    assert sum(seen[i] for i in range(12, 24)) / n == pytest.approx(0.30, abs=0.06)
    assert max(seen) == 60 and min(seen) >= 1


def test_text_is_made_of_built_in_sentences_GEN_4(server: RunningServer) -> None:
    text = post(
        server, "/v1/completions", {"prompt": "x", "max_tokens": 200, "ignore_eos": True}
    ).json()["choices"][0]["text"]
    rest = text
    while rest:
        match = next((s for s in SENTENCES if rest.startswith(s)), None)
        if match is None:
            assert any(s.startswith(rest) for s in SENTENCES), rest
            break
        rest = rest[len(match) :]


def test_echo_of_token_id_prompt_is_comma_joined_ids_GEN_1_API_CMPL_4(
    server_factory: ServerFactory,
) -> None:
    echo = server_factory("version: 1\nmodel: {name: m}\nresponses: {mode: echo}\n")
    body = post(echo, "/v1/completions", {"prompt": [1, 2, 3]}).json()
    assert body["choices"][0]["text"] == "1,2,3"
    assert body["usage"]["completion_tokens"] == 3
    assert body["usage"]["prompt_tokens"] == 3
    body = post(echo, "/v1/completions", {"prompt": "This is a test.", "max_tokens": 5}).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["choices"][0]["text"] == "This is a test."


def test_chat_n_choices_share_the_prompt_and_sum_completions_API_CHAT_2(
    server: RunningServer,
) -> None:
    body = post(
        server,
        "/v1/chat/completions",
        {"messages": USER, "n": 3, "max_tokens": 20, "ignore_eos": True},
    ).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    texts = [c["message"]["content"] for c in body["choices"]]
    assert len(set(texts)) == 3
    assert body["usage"]["prompt_tokens"] == 10
    assert body["usage"]["completion_tokens"] == 3 * 20
    assert body["usage"]["total_tokens"] == 10 + 60


def test_chat_n_stream_finishes_every_choice_after_all_tokens_API_CHAT_4(
    server: RunningServer,
) -> None:
    response = post(
        server,
        "/v1/chat/completions",
        {
            "messages": USER,
            "n": 2,
            "max_tokens": 4,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    parsed = chunks(response)
    *body, usage = parsed
    roles = [c["choices"][0]["index"] for c in body if "role" in c["choices"][0]["delta"]]
    assert sorted(roles) == [0, 1]
    contents = Counter(
        c["choices"][0]["index"] for c in body if c["choices"][0]["delta"].get("content")
    )
    assert contents == {0: 4, 1: 4}
    finishes = [c for c in body if c["choices"][0]["finish_reason"]]
    assert [f["choices"][0]["index"] for f in finishes] == [0, 1]
    assert body[-2:] == finishes
    assert usage["usage"]["completion_tokens"] == 8
    assert usage["usage"]["prompt_tokens"] == 10


def test_completion_prompt_list_fans_out_with_indices_p_times_n_plus_j_API_CMPL_2(
    server: RunningServer,
) -> None:
    body = post(
        server,
        "/v1/completions",
        {"prompt": ["This is a test.", "hi"], "n": 2, "max_tokens": 3, "ignore_eos": True},
    ).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert body["usage"] == {
        "prompt_tokens": 5 + 1,
        "completion_tokens": 12,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


@pytest.mark.parametrize(
    ("prompt", "prompt_tokens"),
    [([5, 6, 7], 3), ([[5, 6], [7, 8, 9]], 5), (["a b", "c"], 3), ("one two three", 3)],
)
def test_completion_prompt_forms_API_CMPL_1(
    server: RunningServer, prompt: object, prompt_tokens: int
) -> None:
    body = post(server, "/v1/completions", {"prompt": prompt, "max_tokens": 2}).json()
    assert body["usage"]["prompt_tokens"] == prompt_tokens


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        ([""], "must not contain an empty string"),
        (["a", ""], "must not contain an empty string"),
        ([[1], []], "must not contain an empty token-id array"),
        ([-1, 2], "prompt"),
        ([["a"], [1]], "prompt"),
        (["a", 1], "prompt"),
        (None, "at least one prompt"),
    ],
)
def test_bad_completion_prompts_are_400_API_CMPL_1(
    server: RunningServer, prompt: object, fragment: str
) -> None:
    response = post(server, "/v1/completions", {"prompt": prompt})
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_chat_logprobs_follow_the_upstream_pattern_LP_1_LP_2(server: RunningServer) -> None:
    body = post(
        server,
        "/v1/chat/completions",
        {
            "messages": USER,
            "max_tokens": 6,
            "ignore_eos": True,
            "logprobs": True,
            "top_logprobs": 2,
        },
    ).json()
    content = body["choices"][0]["logprobs"]["content"]
    assert len(content) == 6
    for position, entry in enumerate(content):
        assert entry["logprob"] == token_logprob(position)
        assert entry["bytes"] == list(entry["token"].encode())
        top = entry["top_logprobs"]
        assert [t["token"] for t in top] == [entry["token"], f"{entry['token']}_1"]
        assert [t["logprob"] for t in top] == [token_logprob(position), token_logprob(position, 1)]
    assert "".join(e["token"] for e in content) == body["choices"][0]["message"]["content"]


def test_streamed_chat_logprobs_advance_with_the_position_LP_4(server: RunningServer) -> None:
    response = post(
        server,
        "/v1/chat/completions",
        {"messages": USER, "max_tokens": 5, "ignore_eos": True, "logprobs": True, "stream": True},
    )
    entries = [
        c["choices"][0]["logprobs"]["content"][0]
        for c in chunks(response)
        if c["choices"][0]["delta"].get("content")
    ]
    assert [e["logprob"] for e in entries] == [token_logprob(p) for p in range(5)]
    assert all(e["top_logprobs"] == [] for e in entries)


def test_completion_logprobs_LP_3(server: RunningServer) -> None:
    body = post(
        server,
        "/v1/completions",
        {"prompt": "x", "max_tokens": 4, "ignore_eos": True, "logprobs": 3},
    ).json()
    logprobs = body["choices"][0]["logprobs"]
    tokens = logprobs["tokens"]
    assert "".join(tokens) == body["choices"][0]["text"]
    assert logprobs["token_logprobs"] == [token_logprob(p) for p in range(4)]
    assert [len(t) for t in logprobs["top_logprobs"]] == [3, 3, 3, 3]
    offsets = [sum(len(t) for t in tokens[:i]) for i in range(4)]
    assert logprobs["text_offset"] == offsets
    streamed = chunks(
        post(
            server,
            "/v1/completions",
            {"prompt": "x", "max_tokens": 4, "ignore_eos": True, "logprobs": 1, "stream": True},
        )
    )
    token_chunks = [c["choices"][0] for c in streamed if c["choices"][0]["text"]]
    text_offsets = [c["logprobs"]["text_offset"][0] for c in token_chunks]
    lengths = [len(c["text"]) for c in token_chunks]
    assert text_offsets == [sum(lengths[:i]) for i in range(4)]


def test_openai_sdk_parses_logprobs(server: RunningServer) -> None:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="x") as client:
        chat = client.chat.completions.create(
            model="m", messages=USER, max_tokens=3, logprobs=True, top_logprobs=1
        )
        assert chat.choices[0].logprobs is not None
        assert chat.choices[0].logprobs.content is not None
        assert chat.choices[0].logprobs.content[0].top_logprobs[0].logprob == -1.0
        completion = client.completions.create(model="m", prompt="x", max_tokens=3, logprobs=2)
        assert completion.choices[0].logprobs is not None
        assert completion.choices[0].logprobs.token_logprobs is not None


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs must be between 0 and 20"),
        ({"top_logprobs": 2}, "logprobs must be set to true"),
        ({"min_tokens": -1}, "min_tokens must be greater than or equal to 0"),
        ({"min_tokens": 9, "max_tokens": 5}, "min_tokens must be less than or equal to max_tokens"),
        ({"n": 129}, "n must be at most 128"),
    ],
)
def test_bad_generation_options_are_400(
    server: RunningServer, payload: dict[str, Any], fragment: str
) -> None:
    response = post(server, "/v1/chat/completions", {"messages": USER, **payload})
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_min_tokens_is_a_floor_on_the_length(server: RunningServer) -> None:
    for _ in range(30):
        body = post(
            server, "/v1/completions", {"prompt": "x", "max_tokens": 50, "min_tokens": 30}
        ).json()
        assert 30 <= body["usage"]["completion_tokens"] <= 50


def test_request_seed_repeats_the_answer_whatever_came_before(server: RunningServer) -> None:
    payload = {"prompt": "seeded", "max_tokens": 40, "seed": 77}
    first = post(server, "/v1/completions", payload).json()["choices"][0]["text"]
    post(server, "/v1/completions", {"prompt": "noise", "max_tokens": 10})
    again = post(server, "/v1/completions", payload).json()["choices"][0]["text"]
    other = post(server, "/v1/completions", {**payload, "seed": 78}).json()["choices"][0]["text"]
    assert first == again
    assert other != first


def test_full_queue_rejects_with_429_and_the_server_stays_healthy_SCHED_3(
    server_factory: ServerFactory,
) -> None:
    tight = server_factory(
        "version: 1\nmodel: {name: m}\nengine: {max-num-seqs: 1, max-waiting-queue-length: 1}\n"
        "latency: {time-to-first-token: 300ms}\n"
    )
    response = post(tight, "/v1/completions", {"prompt": ["a", "b", "c"], "max_tokens": 1})
    assert response.status_code == 429
    assert response.json()["error"] == {
        "message": "Failed to enqueue request, waiting requests queue is full",
        "type": "RateLimitError",
        "param": None,
        "code": 429,
    }
    with httpx.Client(base_url=tight.base_url, timeout=10) as client:
        client.get("/health")  # open the connection before timing
        start = time.perf_counter()
        answer = client.post("/v1/completions", json={"model": "m", "prompt": "a", "max_tokens": 1})
        elapsed = time.perf_counter() - start
    assert answer.status_code == 200
    assert elapsed == pytest.approx(0.300, abs=0.05)
    assert httpx.get(f"{tight.base_url}/health").status_code == 200
