"""The official openai SDK, pointed at a running llmsim, completes every basic call."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.conftest import ServerFactory
from tests.support import RunningServer

SCENARIO = """
version: 1
seed: 7
model:
  name: Qwen/Qwen2.5-1.5B-Instruct
  served-model-name: [qwen, qwen-alias]
latency:
  time-to-first-token: 10ms
  inter-token-latency: 2ms
"""


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="unused") as sdk:
        yield sdk


def test_models_lists_every_served_name_API_MODELS_1(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["qwen", "qwen-alias"]
    assert all(m.owned_by == "vllm" for m in models.data)


def test_chat_completion_non_streamed_API_CHAT_2(client: openai.OpenAI) -> None:
    response = client.chat.completions.create(
        model="qwen-alias",
        messages=[{"role": "user", "content": "This is a test."}],
        max_tokens=12,
    )
    assert response.object == "chat.completion"
    assert response.id.startswith("chatcmpl-")
    assert response.model == "qwen"
    [choice] = response.choices
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert response.usage is not None
    assert response.usage.prompt_tokens == 10
    assert 1 <= response.usage.completion_tokens <= 12
    assert response.usage.total_tokens == 10 + response.usage.completion_tokens


def test_chat_completion_streamed_with_usage_API_CHAT_4(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="qwen",
        messages=[{"role": "user", "content": [{"type": "text", "text": "This is a test."}]}],
        max_completion_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c for c in chunks if c.choices and c.choices[0].delta.content]
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert usage.completion_tokens == len(content)
    assert usage.prompt_tokens == 10
    assert len({c.id for c in chunks}) == 1


def test_completion_non_streamed_API_CMPL_2(client: openai.OpenAI) -> None:
    response = client.completions.create(model="qwen", prompt="This is a test.", max_tokens=5)
    assert response.object == "text_completion"
    assert response.id.startswith("cmpl-")
    assert response.choices[0].text
    assert response.usage is not None and response.usage.prompt_tokens == 5


def test_completion_streamed_with_usage_API_CMPL_3(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model="qwen",
        prompt="This is a test.",
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text_chunks = [c for c in chunks if c.choices and c.choices[0].text]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(text_chunks)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")


def test_sdk_raises_typed_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="qwen", messages=[])
