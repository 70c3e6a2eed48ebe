"""Exact inputs fuzzing found that answered 500 (or held the event loop): each is now a 400 in
the endpoint's own error shape, or, for integers beyond 64 bits that the Responses API echoes,
a 200 that writes them exactly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.fuzz.support import assert_clean_answer
from tests.support import RunningServer

SCENARIO = (
    "version: 1\nmodel: {name: m, max-model-len: 1024}\n"
    "metrics: {fake-metrics: {running-requests: 1}}\n"
)
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
USER = [{"role": "user", "content": "hi"}]
OBJECT = {"type": "object", "properties": {"a": {"type": "string"}}}
HUGE = 2**64
"""The smallest integer that fits in no 64-bit integer."""


def chat_tool(parameters: Any) -> dict[str, Any]:
    function = {"name": "f", "description": "d", "parameters": parameters}
    return {"model": "m", "messages": USER, "max_tokens": 4, "tool_choice": "required",
            "tools": [{"type": "function", "function": function}]}  # fmt: skip


def chat_schema(schema: Any) -> dict[str, Any]:
    response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    return {"model": "m", "messages": USER, "max_tokens": 4, "response_format": response_format}


def responses_tool(parameters: Any, **extra: Any) -> dict[str, Any]:
    tool = {"type": "function", "name": "f", "description": "d", "parameters": parameters}
    return {"model": "m", "input": "hi", "max_output_tokens": 4, "tools": [{**tool, **extra}],
            "tool_choice": "required"}  # fmt: skip


def responses_schema(schema: Any) -> dict[str, Any]:
    text = {"format": {"type": "json_schema", "name": "x", "schema": schema}}
    return {"model": "m", "input": "hi", "max_output_tokens": 4, "text": text}


def messages_tool(input_schema: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 4, "messages": USER, "tool_choice": {"type": "any"},
            "tools": [{"name": "f", "input_schema": input_schema}]}  # fmt: skip


def responses_echo(**fields: Any) -> dict[str, Any]:
    return {"model": "m", "input": "hi", "max_output_tokens": 4, **fields}


FOUND = [
    # fake-metrics loras: a running/waiting list with a non-string item was joined as
    # strings (TypeError in llmsim/scenario/fake_metrics.py _comma_list).
    pytest.param("/fake_metrics", {"loras": [{"running": "", "timestamp": 0, "waiting": [None]}]},
                 id="fake-metrics-lora-null"),
    pytest.param("/fake_metrics", {"loras": ['{"running": [1], "timestamp": 0, "waiting": ""}']},
                 id="fake-metrics-lora-json-text"),
    pytest.param("/admin/config",
                 {"fake-metrics": {"loras": [{"running": [1], "timestamp": 0, "waiting": ""}]}},
                 id="admin-config-lora-int"),
    # Tool parameter schemas: keywords of the wrong type raised TypeError in
    # llmsim/engine/tools.py _check_schema.
    pytest.param(CHAT, chat_tool({"type": {}, "properties": {}}), id="chat-tool-type-object"),
    pytest.param(CHAT, chat_tool({**OBJECT, "required": [[]]}), id="chat-tool-required-list"),
    pytest.param(CHAT, chat_tool({"type": "object", "properties": {"a": {
        "type": "array", "items": {"type": "string"}, "minItems": "x", "maxItems": 1}}}),
        id="chat-tool-min-items-string"),
    pytest.param(RESPONSES, responses_tool({**OBJECT, "required": [{}]}),
                 id="responses-tool-required-object"),
    pytest.param("/v1/messages", messages_tool({**OBJECT, "required": [[]]}),
                 id="messages-tool-required-list"),
    # Tool arguments and structured outputs drawn from a schema with a keyword of the wrong
    # type raised in llmsim/engine/tools.py _value, _bounds or _string.
    pytest.param(CHAT, chat_tool({"type": "object", "required": ["a"],
                                  "properties": {"a": {"type": "integer", "minimum": "a"}}}),
                 id="chat-tool-minimum-string"),
    pytest.param(CHAT, chat_schema({"enum": []}), id="chat-schema-empty-enum"),
    pytest.param(CHAT, chat_schema({"type": "object", "properties": 5}),
                 id="chat-schema-properties-number"),
    pytest.param(CHAT, chat_schema({"type": "string", "minLength": "x"}),
                 id="chat-schema-min-length-string"),
    pytest.param(CHAT, chat_schema({"type": "integer", "minimum": 10**400}),
                 id="chat-schema-minimum-beyond-float"),
    pytest.param(RESPONSES, responses_schema({"type": "integer", "minimum": "a"}),
                 id="responses-schema-minimum-string"),
    # minLength/minItems were unbounded: the answer was built in full on the event loop
    # (10**8: seconds and hundreds of MB; 1e300: never finished).
    pytest.param(CHAT, chat_schema({"type": "string", "minLength": 10**8}),
                 id="chat-schema-min-length-huge"),
    pytest.param(CHAT, chat_tool({"type": "object", "required": ["a"], "properties": {
        "a": {"type": "array", "items": {"type": "string"}, "minItems": 10**8}}}),
        id="chat-tool-min-items-huge"),
]  # fmt: skip
ECHOED_HUGE_INTEGERS = [
    # /v1/responses echoes metadata, tools, text and tool_choice; orjson cannot write an
    # integer beyond 64 bits ('Integer exceeds 64-bit range' in respond_json: 500).
    pytest.param(responses_echo(metadata={"a": HUGE}), id="metadata"),
    pytest.param(responses_tool(OBJECT, x=HUGE), id="tools"),
    pytest.param(responses_echo(text={"format": {"type": "text"}, "x": -HUGE}), id="text"),
    pytest.param(responses_echo(tool_choice={"type": "auto", "x": HUGE}), id="tool-choice"),
    pytest.param({**responses_echo(metadata={"a": HUGE}), "stream": True}, id="streamed"),
]


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=10.0) as client:
        yield client


@pytest.mark.parametrize(("path", "body"), FOUND)
def test_the_input_is_a_400_in_the_endpoint_shape(
    client: httpx.Client, path: str, body: Any
) -> None:
    response = client.post(path, json=body)
    assert_clean_answer(path, response)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("body", ECHOED_HUGE_INTEGERS)
def test_integers_beyond_64_bits_are_echoed_exactly(client: httpx.Client, body: Any) -> None:
    response = client.post(RESPONSES, json=body)
    assert_clean_answer(RESPONSES, response)
    assert response.status_code == 200, response.text
    assert str(HUGE) in response.text
