"""Reasoning streams, omni images (OMNI-1) and media inputs counted as prompt tokens."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ServerFactory
from tests.support import RunningServer

USER = [{"role": "user", "content": "Think about it."}]
THINKING = """version: 1
seed: 9
model: {name: m}
latency: {time-to-first-token: 10ms, inter-token-latency: 2ms}
responses:
  reasoning: {min-tokens: 5, max-tokens: 8}
"""


@pytest.fixture(scope="module")
def thinking(server_factory: ServerFactory) -> RunningServer:
    return server_factory(THINKING)


def chat(server: RunningServer, client: httpx.Client | None = None, **body: Any) -> httpx.Response:
    payload = {"model": "m", "messages": USER, **body}
    if client is not None:
        return client.post("/v1/chat/completions", json=payload)
    return httpx.post(f"{server.base_url}/v1/chat/completions", json=payload, timeout=30)


def deltas(response: httpx.Response) -> list[dict[str, Any]]:
    frames = response.text.strip().split("\n\n")
    assert frames[-1] == "data: [DONE]"
    return [json.loads(frame.removeprefix("data: ")) for frame in frames[:-1]]


def test_reasoning_comes_before_the_answer_streamed_and_not(thinking: RunningServer) -> None:
    body = chat(thinking, max_tokens=40, ignore_eos=True).json()
    message = body["choices"][0]["message"]
    assert message["reasoning_content"] and message["content"]
    assert body["usage"]["completion_tokens"] == 40
    chunks = deltas(chat(thinking, max_tokens=40, ignore_eos=True, stream=True))
    kinds = []
    for chunk in chunks:
        delta = chunk["choices"][0]["delta"] if chunk["choices"] else {}
        if "reasoning_content" in delta:
            kinds.append("r")
        elif delta.get("content"):
            kinds.append("c")
    assert 5 <= kinds.count("r") <= 8 and kinds.count("r") + kinds.count("c") == 40
    assert kinds == sorted(kinds, reverse=True)  # every reasoning delta before any content


def test_openai_sdk_reads_reasoning_from_the_stream(thinking: RunningServer) -> None:
    with openai.OpenAI(base_url=thinking.openai_base_url, api_key="x") as client:
        stream = client.chat.completions.create(
            model="m",
            messages=USER,
            max_tokens=30,
            stream=True,  # type: ignore[arg-type]
        )
        reasoning = content = ""
        for chunk in stream:
            delta = chunk.choices[0].delta
            reasoning += getattr(delta, "reasoning_content", None) or ""
            content += delta.content or ""
    assert reasoning and content


def test_reasoning_counts_against_max_tokens(thinking: RunningServer) -> None:
    body = chat(thinking, max_tokens=3).json()
    message = body["choices"][0]["message"]
    assert len(message["reasoning_content"]) > 0 and "content" not in message
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3


def test_enable_thinking_false_turns_reasoning_off(thinking: RunningServer) -> None:
    body = chat(thinking, chat_template_kwargs={"enable_thinking": False}).json()
    assert "reasoning_content" not in body["choices"][0]["message"]


def test_reasoning_field_name_and_probability(server_factory: ServerFactory) -> None:
    server = server_factory(
        "version: 1\nmodel: {name: m}\n"
        "responses: {reasoning: {field: reasoning, probability: 50}}\n"
    )
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        messages = [chat(server, client, seed=s).json()["choices"][0]["message"] for s in range(40)]
    reasoned = sum("reasoning" in m for m in messages)
    assert 8 <= reasoned <= 32
    assert not any("reasoning_content" in m for m in messages)


OMNI = """version: 1
seed: 4
model: {name: m}
latency: {time-to-first-token: 10ms, inter-token-latency: 1ms, time-to-generate-image: 150ms}
responses: {omni: true, image-emission-rate: %d}
"""


def test_omni_image_after_the_text_OMNI_1(server_factory: ServerFactory) -> None:
    always = server_factory(OMNI % 100)
    with httpx.Client(base_url=always.base_url, timeout=30) as client:
        chat(always, client, max_tokens=2)
        started = time.perf_counter()
        body = chat(always, client, max_tokens=5, ignore_eos=True).json()
        elapsed = time.perf_counter() - started
        content = body["choices"][0]["message"]["content"]
        assert [block["type"] for block in content] == ["text", "image_url"]
        url = content[1]["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        assert base64.b64decode(url.split(",", 1)[1]).startswith(b"\x89PNG")
        # TTFT 10 ms + 4 x 1 ms ITL + 150 ms image
        assert 0.164 <= elapsed < 0.164 + 0.1
        chunks = deltas(chat(always, client, max_tokens=3, ignore_eos=True, stream=True))
    texts = [
        c
        for c in chunks
        if c["choices"] and isinstance(c["choices"][0]["delta"].get("content"), list)
    ]
    image = [c for c in chunks if c.get("modality") == "image"]
    assert len(image) == 1
    assert image[0]["choices"][0]["delta"]["content"][0]["type"] == "image_url"
    assert chunks.index(image[0]) < next(
        i for i, c in enumerate(chunks) if c["choices"] and c["choices"][0]["finish_reason"]
    )
    assert len(texts) == 4  # three text deltas in list form and the image
    assert all(
        c["choices"][0]["delta"]["content"][0]["type"] in {"text", "image_url"} for c in texts
    )


def test_omni_rate_zero_never_and_header_always_OMNI_1(server_factory: ServerFactory) -> None:
    never = server_factory(OMNI % 0)
    with httpx.Client(base_url=never.base_url, timeout=30) as client:
        for _ in range(5):
            assert isinstance(chat(never, client).json()["choices"][0]["message"]["content"], str)
        forced = client.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": USER},
            headers={"X-Send-Image": "true"},
        ).json()
    assert forced["choices"][0]["message"]["content"][-1]["type"] == "image_url"


def test_omni_off_ignores_the_header(thinking: RunningServer) -> None:
    response = httpx.post(
        f"{thinking.base_url}/v1/chat/completions",
        json={"model": "m", "messages": USER, "chat_template_kwargs": {"enable_thinking": False}},
        headers={"X-Send-Image": "1"},
        timeout=30,
    )
    assert isinstance(response.json()["choices"][0]["message"]["content"], str)


def test_media_parts_count_as_fixed_prompt_tokens(server_factory: ServerFactory) -> None:
    server = server_factory(
        "version: 1\nmodel: {name: m, image-tokens: 100, audio-tokens: 40, video-tokens: 300}\n"
    )

    def prompt_tokens(*parts: dict[str, Any]) -> int:
        content = [{"type": "text", "text": "Describe this"}, *parts]
        body = chat(server, messages=[{"role": "user", "content": content}], max_tokens=1)
        assert body.status_code == 200
        return int(body.json()["usage"]["prompt_tokens"])

    text_only = prompt_tokens()
    short = {"type": "image_url", "image_url": {"url": "https://x/a.png"}}
    long = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "QUJD" * 5000}}
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    video = {"type": "video_url", "video_url": {"url": "https://x/v.mp4"}}
    with_image = prompt_tokens(short)
    assert with_image == prompt_tokens(long)  # the URL's length does not count
    assert 100 <= with_image - text_only <= 102  # the image, and the line break after it
    assert prompt_tokens(audio) == with_image - 100 + 40
    assert prompt_tokens(video) == with_image - 100 + 300
    tokenized = httpx.post(
        f"{server.base_url}/tokenize",
        json={"model": "m", "messages": [{"role": "user", "content": [short]}]},
        timeout=10,
    ).json()
    assert tokenized["count"] >= 100


def test_same_image_reuses_the_prefix_cache_another_does_not(
    server_factory: ServerFactory,
) -> None:
    server = server_factory(
        "version: 1\nmodel: {name: m, image-tokens: 64}\n"
        "kv-cache: {enable-kvcache: true, block-size: 16, kv-cache-size: 1024}\n",
        env={"POD_IP": "127.0.0.1"},
    )

    def cached(url: str) -> int:
        content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "?"}]
        body = chat(server, messages=[{"role": "user", "content": content}], max_tokens=1).json()
        return int(body["usage"]["prompt_tokens_details"]["cached_tokens"])

    assert cached("https://x/one.png") == 0
    assert cached("https://x/one.png") >= 64
    assert cached("https://x/two.png") < 16
