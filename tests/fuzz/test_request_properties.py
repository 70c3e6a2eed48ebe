"""Property tests of the generation endpoints over HTTP: whatever the body, 2xx or a clear 4xx.

Bodies are arbitrary JSON values, raw bytes, and valid requests with fields swapped for values
of the wrong type, huge or negative numbers, or garbage (keys taken from the request models'
schemas, so the mutations reach nested fields too). Every answer must be 2xx or 4xx, never 5xx
and never a hang, and a 4xx body must be the endpoint's own error shape. Examples are bounded
and derandomised so CI sees the same inputs every run; ``FUZZ_MAX_EXAMPLES`` raises the budget
for a longer hunt (``FUZZ_MAX_EXAMPLES=2000 pytest tests/fuzz``).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from llmsim.server.generate import GenerateRequest
from llmsim.server.messages import MessagesRequest
from llmsim.server.protocol import ChatCompletionRequest, CompletionRequest
from llmsim.server.responses import ResponsesRequest
from tests.conftest import ServerFactory
from tests.fuzz.support import MESSAGES, assert_clean_answer
from tests.support import RunningServer

SCENARIO = "version: 1\nmodel: {name: m, max-model-len: 1024}\nlatency: {time-to-first-token: 0s}\n"
REQUEST_TIMEOUT = 10.0
"""Seconds one request may take; longer is a hang and fails the example."""
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
RESPONSES = "/v1/responses"
GENERATE = "/inference/v1/generate"
FUNCTION = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
VALID: dict[str, dict[str, Any]] = {
    CHAT: {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in the picture?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "max_tokens": 8,
        "min_tokens": 1,
        "n": 2,
        "logprobs": True,
        "top_logprobs": 2,
        "seed": 7,
        "stream": False,
        "stream_options": {"include_usage": True},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "The weather in a city.",
                    "parameters": FUNCTION,
                },
            }
        ],
        "tool_choice": "auto",
        "chat_template_kwargs": {"enable_thinking": False},
    },
    COMPLETIONS: {
        "model": "m",
        "prompt": ["Once upon a time", "The answer is"],
        "max_tokens": 8,
        "n": 2,
        "logprobs": 2,
        "seed": 7,
        "stream": False,
        "stream_options": {"include_usage": True},
    },
    RESPONSES: {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo?"}]},
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "weather",
                "arguments": '{"city": "Oslo"}',
            },
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
        "max_output_tokens": 8,
        "tools": [
            {
                "type": "function",
                "name": "weather",
                "description": "The weather in a city.",
                "parameters": FUNCTION,
            }
        ],
        "tool_choice": "auto",
        "include": ["message.output_text.logprobs"],
        "top_logprobs": 2,
        "stream": False,
    },
    MESSAGES: {
        "model": "m",
        "max_tokens": 8,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"a": 1}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "sunny"}],
                    },
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                    },
                ],
            },
        ],
        "tools": [{"name": "weather", "input_schema": FUNCTION}],
        "tool_choice": {"type": "auto"},
        "stop_sequences": ["\n\n"],
        "stream": False,
    },
    GENERATE: {
        "model": "m",
        "token_ids": [1, 2, 3, 4],
        "sampling_params": {"max_tokens": 8, "min_tokens": 1, "seed": 7, "ignore_eos": False},
        "stream": False,
    },
}
"""A valid, feature-rich request per endpoint: the starting point of the mutations."""
MODELS: dict[str, type[BaseModel]] = {
    CHAT: ChatCompletionRequest,
    COMPLETIONS: CompletionRequest,
    RESPONSES: ResponsesRequest,
    MESSAGES: MessagesRequest,
    GENERATE: GenerateRequest,
}
PATHS = list(VALID)
SCHEMA_KEYWORDS = [
    "type", "properties", "required", "items", "enum", "const", "anyOf", "oneOf", "allOf",
    "$ref", "$defs", "additionalProperties", "minItems", "maxItems", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
]  # fmt: skip
"""Keys a mutation may add anywhere, so the JSON schemas in requests get malformed too."""
EDGE_NUMBERS = [
    0, -1, 1, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63), 10**30,
    -(10**30), 1e308, -1e308, 5e-324, -0.0, 0.5, -0.5,
]  # fmt: skip
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_MAX_EXAMPLES", "40")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from(EDGE_NUMBERS)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["", "m", "user", "assistant", "text", "function", "auto", "\x00", "💥"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def field_names(model: type[BaseModel]) -> list[str]:
    """Every property name in ``model``'s JSON schema, nested models included."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            properties = node.get("properties")
            if isinstance(properties, dict):
                names.update(properties)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(model.model_json_schema())
    return sorted(names)


def containers(value: Any) -> Iterator[dict[str, Any] | list[Any]]:
    """Every object and array inside ``value``, ``value`` first."""
    if isinstance(value, dict | list):
        yield value
        for child in value.values() if isinstance(value, dict) else value:
            yield from containers(child)


@st.composite
def mutated(draw: st.DrawFn, path: str) -> Any:
    """The endpoint's valid request with one to four places replaced or added: a field set to
    a wrong-typed, extreme or garbage value, or an array item replaced."""
    value = copy.deepcopy(VALID[path])
    names = sorted(set(field_names(MODELS[path])) | set(SCHEMA_KEYWORDS))
    for _ in range(draw(st.integers(1, 4))):
        target = draw(st.sampled_from(list(containers(value))))
        replacement = draw(json_values)
        if isinstance(target, dict):
            keys = sorted(set(target) | set(names))
            target[draw(st.sampled_from(keys))] = replacement
        elif target:
            target[draw(st.integers(0, len(target) - 1))] = replacement
        else:
            target.append(replacement)
    return value


def encode(value: Any) -> bytes:
    """``value`` as JSON; NaN and infinities become the non-standard literals a server must
    refuse."""
    return json.dumps(value, allow_nan=True).encode()


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=REQUEST_TIMEOUT) as client:
        yield client


def post(client: httpx.Client, path: str, content: bytes) -> httpx.Response:
    return client.post(path, content=content, headers={"content-type": "application/json"})


@pytest.mark.parametrize("path", PATHS)
def test_the_valid_requests_are_answered(client: httpx.Client, path: str) -> None:
    for stream in (False, True):
        response = post(client, path, encode({**VALID[path], "stream": stream}))
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", PATHS)
@FUZZ
@given(body=json_values)
def test_any_json_value_is_answered_without_a_server_error(
    client: httpx.Client, path: str, body: Any
) -> None:
    assert_clean_answer(path, post(client, path, encode(body)))


@pytest.mark.parametrize("path", PATHS)
@FUZZ
@given(body=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_bytes_are_answered_without_a_server_error(
    client: httpx.Client, path: str, body: bytes
) -> None:
    assert_clean_answer(path, post(client, path, body))


@pytest.mark.parametrize("path", PATHS)
@FUZZ
@given(data=st.data())
def test_mutated_requests_are_answered_without_a_server_error(
    client: httpx.Client, path: str, data: st.DataObject
) -> None:
    body = data.draw(mutated(path))
    if body.get("stream") is False:
        body["stream"] = data.draw(st.booleans())
    assert_clean_answer(path, post(client, path, encode(body)))
