"""Tool calls on chat completions, as the official SDK and a JSON-schema validator see them
(TOOL-1 to TOOL-4, API-CHAT-3, API-CHAT-5)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.conftest import ServerFactory
from tests.support import RunningServer

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 3, "maxLength": 12},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "unit": {"type": "string", "enum": ["C", "F"]},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "limit": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                "tags": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 2,
                    "maxItems": 3,
                },
                "filters": {
                    "type": "object",
                    "properties": {
                        "recent": {"type": "boolean"},
                        "score": {"type": "integer", "exclusiveMaximum": 10},
                        "nothing": {"type": "null"},
                    },
                    "required": ["recent"],
                },
            },
            "required": ["query", "tags", "filters"],
        },
    },
}
USER = [{"role": "user", "content": "What is the weather in Lisbon?"}]


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory("version: 1\nseed: 12\nmodel: {name: m}\nengine: {max-num-seqs: 64}\n")


def chat(server: RunningServer, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={"model": "m", "messages": USER, **body},
        timeout=30,
    )


def test_openai_sdk_parses_tool_calls_streamed_and_not_API_CHAT_3_API_CHAT_5(
    server: RunningServer,
) -> None:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="x") as client:
        response = client.chat.completions.create(
            model="m",
            messages=USER,
            tools=[WEATHER],
            tool_choice="required",  # type: ignore[list-item]
        )
        choice = response.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        calls = choice.message.tool_calls or []
        assert calls and all(c.function.name == "get_weather" for c in calls)  # type: ignore[union-attr]
        for call in calls:
            jsonschema.validate(
                json.loads(call.function.arguments), WEATHER["function"]["parameters"]
            )  # type: ignore[union-attr, index]
        stream = client.chat.completions.create(
            model="m",
            messages=USER,
            tools=[WEATHER, SEARCH],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": "search"}},
            stream=True,
        )
        arguments: dict[int, str] = {}
        names: dict[int, str] = {}
        finishes = []
        for chunk in stream:
            if chunk.choices[0].finish_reason:
                finishes.append(chunk.choices[0].finish_reason)
            for delta in chunk.choices[0].delta.tool_calls or []:
                if delta.function and delta.function.name:
                    names[delta.index] = delta.function.name
                arguments[delta.index] = arguments.get(delta.index, "") + (
                    (delta.function.arguments or "") if delta.function else ""
                )
        assert names == {0: "search"}
        assert finishes == ["tool_calls"]
        jsonschema.validate(json.loads(arguments[0]), SEARCH["function"]["parameters"])  # type: ignore[index]


def test_arguments_validate_against_their_schemas_over_1000_requests_TOOL_3(
    server: RunningServer,
) -> None:
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, SEARCH)}  # type: ignore[index]
    seen: set[str] = set()
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        for seed in range(1000):
            body = client.post(
                "/v1/chat/completions",
                json={
                    "model": "m",
                    "messages": USER,
                    "tools": [WEATHER, SEARCH],
                    "tool_choice": "required",
                    "seed": seed,
                },
            ).json()
            for call in body["choices"][0]["message"]["tool_calls"]:
                seen.add(call["function"]["name"])
                jsonschema.validate(
                    json.loads(call["function"]["arguments"]), schemas[call["function"]["name"]]
                )
    assert seen == {"get_weather", "search"}


def test_tool_choice_rules_TOOL_2(server: RunningServer) -> None:
    none = chat(server, tools=[WEATHER], tool_choice="none").json()["choices"][0]
    assert none["finish_reason"] != "tool_calls" and none["message"]["content"]
    counts = set()
    for seed in range(40):
        message = chat(server, tools=[WEATHER, SEARCH], tool_choice="auto", seed=seed).json()[
            "choices"
        ][0]["message"]
        counts.add(len(message.get("tool_calls", [])))
    assert counts <= {0, 1, 2} and 0 in counts and max(counts) >= 1
    named = chat(
        server,
        tools=[WEATHER, SEARCH],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    ).json()
    assert [c["function"]["name"] for c in named["choices"][0]["message"]["tool_calls"]] == [
        "get_weather"
    ]
    missing = chat(
        server, tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}
    )
    assert missing.status_code == 400
    assert (
        "tool with name 'nope' requested in tool_choice but not found"
        in missing.json()["error"]["message"]
    )


def test_extra_call_probability_extremes_TOOL_2(server_factory: ServerFactory) -> None:
    for probability, expected in ((0, {1}), (100, {2})):
        server = server_factory(
            "version: 1\nmodel: {name: m}\n"
            f"responses: {{tools: {{tool-call-extra-call-probability: {probability}}}}}\n"
        )
        counts = {
            len(
                chat(server, tools=[WEATHER, SEARCH], tool_choice="required", seed=s).json()[
                    "choices"
                ][0]["message"]["tool_calls"]
            )
            for s in range(10)
        }
        assert counts == expected


def test_ids_arguments_and_usage_TOOL_4(server: RunningServer) -> None:
    body = chat(server, tools=[SEARCH], tool_choice="required", seed=3).json()
    calls = body["choices"][0]["message"]["tool_calls"]
    for call in calls:
        assert re.fullmatch(r"chatcmpl-tool-\d{10}", call["id"])
        arguments = call["function"]["arguments"]
        assert arguments == json.dumps(json.loads(arguments), separators=(",", ":"), sort_keys=True)
    tokenized = [
        httpx.post(
            f"{server.base_url}/tokenize", json={"prompt": c["function"]["arguments"]}
        ).json()["count"]
        for c in calls
    ]
    assert body["usage"]["completion_tokens"] == sum(3 + n for n in tokenized)
    plain = chat(server).json()
    assert body["usage"]["prompt_tokens"] == plain["usage"]["prompt_tokens"]  # tools are not prompt


@pytest.mark.parametrize(
    ("tool", "fragment"),
    [
        (
            {"type": "function", "function": {"name": "f", "description": ""}},
            "parameters is required",
        ),
        (
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object", "properties": {}}},
            },
            "description is required",
        ),
        (
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "description": "",
                    "parameters": {"type": "object", "properties": {}, "$comment": "x"},
                },
            },
            "unsupported keys: $comment",
        ),
        (
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "description": "",
                    "parameters": {
                        "type": "object",
                        "properties": {"a": {"type": "string", "enum": [1]}},
                    },
                },
            },
            "enum values must be of type string",
        ),
        (
            {
                "type": "function",
                "function": {
                    "name": "f",
                    "description": "",
                    "parameters": {"type": "object", "properties": {"a": {"type": "array"}}},
                },
            },
            "array without items",
        ),
        (
            {
                "type": "function",
                "function": {"name": "f", "description": "", "parameters": {"type": "object"}},
            },
            "object without properties",
        ),
        (
            {
                "type": "function",
                "function": {"name": "f", "description": "", "parameters": {"type": "tuple"}},
            },
            ".type must be one of",
        ),
    ],
)
def test_invalid_tools_are_400_TOOL_1(
    server: RunningServer, tool: dict[str, Any], fragment: str
) -> None:
    response = chat(server, tools=[tool])
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message.startswith("Tool validation failed:") and fragment in message


def test_skip_tool_validation_accepts_any_schema_TOOL_1(server_factory: ServerFactory) -> None:
    server = server_factory(
        "version: 1\nmodel: {name: m}\nresponses: {tools: {skip-tool-validation: true}}\n"
    )
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "description": "",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "string"}},
                "$comment": "ok",
            },
        },
    }
    assert chat(server, tools=[tool], tool_choice="required").status_code == 200


def test_tool_results_in_later_turns_are_accepted(server: RunningServer) -> None:
    messages = [
        *USER,
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Lisbon"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    response = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={"model": "m", "messages": messages, "tools": [WEATHER], "tool_choice": "none"},
    )
    assert response.status_code == 200
    assert response.json()["usage"]["prompt_tokens"] > chat(server).json()["usage"]["prompt_tokens"]


def test_remote_decode_keeps_the_tool_calls_API_PD_2(server: RunningServer) -> None:
    body = chat(
        server,
        tools=[WEATHER],
        tool_choice="required",
        kv_transfer_params={"do_remote_decode": True},
        seed=5,
    ).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "remote_decode"
    assert "content" not in choice["message"]
    calls = choice["message"]["tool_calls"]
    assert calls
    for call in calls:
        jsonschema.validate(
            json.loads(call["function"]["arguments"]), WEATHER["function"]["parameters"]
        )  # type: ignore[index]
    tokenized = [
        httpx.post(
            f"{server.base_url}/tokenize", json={"prompt": c["function"]["arguments"]}
        ).json()["count"]
        for c in calls
    ]
    assert body["usage"]["completion_tokens"] == sum(3 + n for n in tokenized)


def test_response_format_json_schema_gives_valid_json(server: RunningServer) -> None:
    schema = WEATHER["function"]["parameters"]  # type: ignore[index]
    fmt = {"type": "json_schema", "json_schema": {"name": "weather", "schema": schema}}
    for seed in range(50):
        body = chat(server, response_format=fmt, seed=seed).json()
        jsonschema.validate(json.loads(body["choices"][0]["message"]["content"]), schema)
    as_object = chat(server, response_format={"type": "json_object"}).json()
    assert isinstance(json.loads(as_object["choices"][0]["message"]["content"]), dict)
    missing = chat(server, response_format={"type": "json_schema", "json_schema": {"name": "x"}})
    assert missing.status_code == 400
    assert chat(server, response_format={"type": "xml"}).status_code == 400


def test_openai_sdk_parse_fills_a_pydantic_model(server: RunningServer) -> None:
    from pydantic import BaseModel

    class Forecast(BaseModel):
        city: str
        days: int
        rain: bool

    with openai.OpenAI(base_url=server.openai_base_url, api_key="x") as client:
        parsed = client.chat.completions.parse(
            model="m",
            messages=USER,  # type: ignore[arg-type]
            response_format=Forecast,
        )
    assert isinstance(parsed.choices[0].message.parsed, Forecast)


def _function(parameters: object) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {"name": "f", "description": "", "parameters": parameters},
    }


HOSTILE_SCHEMAS = [
    ({"type": ["object"], "properties": {}}, ".type must be one of"),
    ({"type": "object", "properties": {}, "required": [{"a": 1}]}, "required names properties"),
    ({"type": "object", "properties": {"a": {"type": "string", "minLength": "2"}}}, "minLength"),
    (
        {"type": "object", "properties": {"a": {"type": "string", "minLength": 10**300}}},
        "minLength",
    ),
    ({"type": "object", "properties": {"a": {"type": "integer", "minimum": "0"}}}, "minimum"),
    ({"type": "object", "properties": {"a": {"type": "number", "maximum": 10**400}}}, "maximum"),
    (
        {"type": "object", "properties": {"a": {"type": "array", "items": [], "minItems": 1}}},
        "items",
    ),
]


@pytest.mark.parametrize(("parameters", "fragment"), HOSTILE_SCHEMAS)
def test_tool_schemas_with_keywords_of_the_wrong_type_or_size_are_400_TOOL_1(
    server: RunningServer, parameters: dict[str, Any], fragment: str
) -> None:
    response = chat(server, tools=[_function(parameters)], tool_choice="required")
    assert response.status_code == 400, response.text
    message = response.json()["error"]["message"]
    assert message.startswith("Tool validation failed:") and fragment in message


def test_schemas_no_answer_can_be_drawn_from_are_400_not_500_or_a_hang(
    server_factory: ServerFactory, server: RunningServer
) -> None:
    huge = {"type": "string", "minLength": 10**300}
    nested = {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}
    nested["minItems"] = nested["items"]["minItems"] = 1000  # type: ignore[index]
    for schema, fragment in ((huge, "minLength"), (nested, "more than 100000 values")):
        fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
        response = chat(server, response_format=fmt)
        assert response.status_code == 400, response.text
        assert fragment in response.json()["error"]["message"]
    unchecked = server_factory(
        "version: 1\nmodel: {name: m}\nresponses: {tools: {skip-tool-validation: true}}\n"
    )
    for parameters in ([1, 2], {"type": "object", "properties": {"a": huge}, "required": ["a"]}):
        response = chat(unchecked, tools=[_function(parameters)], tool_choice="required")
        assert response.status_code == 400, response.text
        assert "Cannot answer for this JSON schema" in response.json()["error"]["message"]
