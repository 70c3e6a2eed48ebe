"""OpenAI's Responses API on ``/v1/responses``, as the official ``openai`` SDK and raw HTTP see
it (API-RESP-1 to API-RESP-7, ERR-4, GEN-1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import ServerFactory
from tests.integration.test_tools import WEATHER as CHAT_WEATHER
from tests.support import RunningServer

WEATHER: dict[str, Any] = {"type": "function", **CHAT_WEATHER["function"]}  # type: ignore[dict-item]
"""The chat tests' weather tool in the Responses API's flat shape."""
SEARCH_CHAT_SHAPE = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}
QUESTION = "What is the weather in Lisbon?"
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
TEXT_CLOSING = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]
PERSON_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": ["string", "null"]}},
            "required": ["city", "zip"],
            "additionalProperties": False,
        },
        "kind": {"const": "person"},
    },
    "required": ["name", "age", "tags", "address", "kind"],
    "additionalProperties": False,
}


class City(BaseModel):
    name: str
    population: int


class Trip(BaseModel):
    destination: City
    stops: list[City]
    note: str | None


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(
        "version: 1\nseed: 5\nmodel: {name: m}\nengine: {max-num-seqs: 16}\n"
        "latency: {time-to-first-token: 5ms, inter-token-latency: 1ms}\n"
    )


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0) as sdk:
        yield sdk


def post(
    server: RunningServer, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    payload = {"model": "m", "input": QUESTION, **body}
    payload = {key: value for key, value in payload.items() if value is not None}
    return httpx.post(f"{server.base_url}/v1/responses", json=payload, headers=headers, timeout=30)


def events(response: httpx.Response) -> list[dict[str, Any]]:
    """The stream's payloads; every frame is ``event: <type>\\ndata: <json>\\n\\n``, numbered
    0, 1, 2, … and never ``[DONE]``."""
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("\n\n")
    out = []
    for frame in response.text.removesuffix("\n\n").split("\n\n"):
        name, data = frame.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        payload = json.loads(data.removeprefix("data: "))
        assert payload["type"] == name.removeprefix("event: ")
        out.append(payload)
    assert [p["sequence_number"] for p in out] == list(range(len(out)))
    return out


def names(payloads: list[dict[str, Any]]) -> list[str]:
    return [p["type"] for p in payloads]


def test_sdk_parses_a_text_response_API_RESP_3(client: openai.OpenAI) -> None:
    response = client.responses.create(model="m", input=QUESTION, max_output_tokens=12)
    assert response.object == "response"
    assert response.id.startswith("resp_")
    assert response.model == "m"
    assert response.status in ("completed", "incomplete")
    [item] = response.output
    assert item.type == "message" and item.role == "assistant"
    assert item.id == "msg_" + response.id.removeprefix("resp_")
    assert item.content[0].type == "output_text"
    assert response.output_text == item.content[0].text and response.output_text
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "text"
    usage = response.usage
    assert usage is not None
    assert usage.input_tokens > 0 and 1 <= usage.output_tokens <= 12
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert usage.input_tokens_details.cached_tokens >= 0
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert response.error is None and response.parallel_tool_calls is True


def test_body_echoes_the_request_settings_API_RESP_3(server: RunningServer) -> None:
    body = post(
        server, instructions="Be brief.", max_output_tokens=9, temperature=0.3, metadata={"k": "v"}
    ).json()
    assert body["instructions"] == "Be brief."
    assert body["max_output_tokens"] == 9
    assert body["temperature"] == 0.3 and body["top_p"] == 1.0
    assert body["metadata"] == {"k": "v"}
    assert body["tool_choice"] == "auto" and body["tools"] == []
    assert body["text"] == {"format": {"type": "text"}}
    assert isinstance(body["created_at"], int)


def test_sdk_stream_events_add_up_to_the_answer_API_RESP_4(client: openai.OpenAI) -> None:
    stream = client.responses.create(model="m", input=QUESTION, max_output_tokens=20, stream=True)
    received = list(stream)
    kinds = [event.type for event in received]
    assert kinds[:4] == TEXT_EVENTS
    assert kinds[-4:] == [*TEXT_CLOSING, "response.completed"] or kinds[-4:] == [
        *TEXT_CLOSING,
        "response.incomplete",
    ]
    deltas = [e.delta for e in received if e.type == "response.output_text.delta"]
    assert len(deltas) == len(kinds) - 8 >= 1
    assert [e.sequence_number for e in received] == list(range(len(received)))
    final = received[-1].response  # type: ignore[union-attr]
    assert final.output_text == "".join(deltas)
    assert final.usage is not None and final.usage.output_tokens == len(deltas)


def test_sdk_stream_helper_gives_the_final_response_API_RESP_4(client: openai.OpenAI) -> None:
    with client.responses.stream(model="m", input=QUESTION) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert final.output_text == text and text
    assert final.status == "completed"


def test_raw_text_stream_event_order_API_RESP_4(server: RunningServer) -> None:
    payloads = events(post(server, stream=True, max_output_tokens=6))
    kinds = names(payloads)
    count = len(kinds) - 8
    assert kinds == [
        *TEXT_EVENTS,
        *["response.output_text.delta"] * count,
        *TEXT_CLOSING,
        kinds[-1],
    ]
    created, in_progress, added, part = payloads[:4]
    assert created["response"]["status"] == "in_progress" and created["response"]["output"] == []
    assert in_progress["response"]["id"] == created["response"]["id"]
    item_id = added["item"]["id"]
    assert added["item"] == {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    assert part["part"] == {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    deltas = payloads[4 : 4 + count]
    for delta in deltas:
        assert delta["item_id"] == item_id
        assert delta["output_index"] == 0 and delta["content_index"] == 0
        assert delta["logprobs"] == []
    text = "".join(d["delta"] for d in deltas)
    done, part_done, item_done, last = payloads[-4:]
    assert done["text"] == text and part_done["part"]["text"] == text
    assert item_done["item"]["content"][0]["text"] == text
    assert last["response"]["output"] == [item_done["item"]]
    assert last["response"]["usage"]["output_tokens"] == count
    assert "[DONE]" not in post(server, stream=True, max_output_tokens=3).text


def test_function_call_validates_against_the_tool_schema_API_RESP_5(
    client: openai.OpenAI,
) -> None:
    response = client.responses.create(model="m", input=QUESTION, tools=[WEATHER])  # type: ignore[list-item]
    [item] = response.output
    assert item.type == "function_call"
    assert item.name == "get_weather" and item.status == "completed"
    assert item.id is not None and item.id.startswith("fc_")
    digits = item.id.removeprefix("fc_")
    assert len(digits) == 10 and digits.isdigit()
    assert item.call_id == f"call_{digits}"
    jsonschema.validate(json.loads(item.arguments), WEATHER["parameters"])
    assert response.status == "completed"
    assert response.usage is not None and response.usage.output_tokens >= 4


def test_chat_shaped_tools_and_tool_choices_API_RESP_5(server: RunningServer) -> None:
    tools = [WEATHER, SEARCH_CHAT_SHAPE]
    named = post(server, tools=tools, tool_choice={"type": "function", "name": "search"}).json()
    [item] = named["output"]
    assert item["type"] == "function_call" and item["name"] == "search"
    jsonschema.validate(json.loads(item["arguments"]), SEARCH_CHAT_SHAPE["function"]["parameters"])  # type: ignore[index]
    allowed = {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "function", "name": "search"}],
    }
    for choice in ("required", "auto", allowed):
        body = post(server, tools=tools, tool_choice=choice).json()
        assert [i["type"] for i in body["output"]] == ["function_call"], choice
    none = post(server, tools=tools, tool_choice="none").json()
    assert none["output"][0]["type"] == "message"


def test_streamed_function_call_API_RESP_5(server: RunningServer, client: openai.OpenAI) -> None:
    payloads = events(post(server, stream=True, tools=[WEATHER]))
    kinds = names(payloads)
    count = len(kinds) - 6
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        *["response.function_call_arguments.delta"] * count,
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added = payloads[2]["item"]
    assert added["type"] == "function_call" and added["status"] == "in_progress"
    assert added["arguments"] == ""
    arguments = "".join(p["delta"] for p in payloads[3 : 3 + count])
    assert all(p["item_id"] == added["id"] for p in payloads[3 : 3 + count])
    done = payloads[-3]
    assert done["item_id"] == added["id"] and done["name"] == "get_weather"
    assert done["arguments"] == arguments
    jsonschema.validate(json.loads(arguments), WEATHER["parameters"])
    assert payloads[-2]["item"] == {**added, "arguments": arguments, "status": "completed"}
    assert payloads[-1]["response"]["output"] == [payloads[-2]["item"]]
    with client.responses.stream(model="m", input=QUESTION, tools=[WEATHER]) as stream:  # type: ignore[list-item]
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output[0].type == "function_call"
    jsonschema.validate(json.loads(final.output[0].arguments), WEATHER["parameters"])


def test_function_call_output_turn_answers_text_API_RESP_2_API_RESP_5(
    client: openai.OpenAI,
) -> None:
    first = client.responses.create(model="m", input=QUESTION, tools=[WEATHER])  # type: ignore[list-item]
    call = first.output[0]
    assert call.type == "function_call"
    history: list[Any] = [
        {"role": "user", "content": QUESTION},
        {
            "type": "function_call",
            "id": call.id,
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 25 C"},
    ]
    second = client.responses.create(model="m", input=history, tools=[WEATHER])  # type: ignore[list-item]
    [item] = second.output
    assert item.type == "message" and second.output_text
    assert second.usage is not None and first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens


def test_message_items_and_parts_API_RESP_1(server: RunningServer) -> None:
    plain = post(server, input=[{"role": "user", "content": QUESTION}]).json()
    as_parts = post(
        server,
        input=[
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": QUESTION}],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ],
    ).json()
    as_string = post(server).json()
    tokens = plain["usage"]["input_tokens"]
    assert as_parts["usage"]["input_tokens"] == tokens == as_string["usage"]["input_tokens"]
    image = {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "auto"}
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    media = post(
        server,
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": QUESTION}, image, audio]},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Let me see."}]},
            {"role": "user", "content": "Well?"},
        ],
    )
    assert media.status_code == 200
    assert media.json()["usage"]["input_tokens"] > tokens + 256 + 128


def test_instructions_are_a_leading_system_message_API_RESP_2(server: RunningServer) -> None:
    instructions = "Answer in one short sentence."
    body = post(server, instructions=instructions).json()
    chat = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {"role": "system", "content": instructions},
                {"role": "user", "content": QUESTION},
            ],
        },
        timeout=30,
    ).json()
    assert body["usage"]["input_tokens"] == chat["usage"]["prompt_tokens"]
    assert body["usage"]["input_tokens"] > post(server).json()["usage"]["input_tokens"]


def test_logprobs_through_include_API_RESP_6(server: RunningServer) -> None:
    include = ["message.output_text.logprobs"]
    body = post(server, include=include, top_logprobs=2, max_output_tokens=8).json()
    part = body["output"][0]["content"][0]
    entries = part["logprobs"]
    assert len(entries) == body["usage"]["output_tokens"] >= 1
    assert "".join(e["token"] for e in entries) == part["text"]
    first = entries[0]
    assert first["logprob"] == -1.0 and first["bytes"] == list(first["token"].encode())
    assert [t["token"] for t in first["top_logprobs"]] == [first["token"], first["token"] + "_1"]
    assert (
        post(server, include=include).json()["output"][0]["content"][0]["logprobs"][0][
            "top_logprobs"
        ]
        == []
    )
    assert post(server, top_logprobs=2).json()["output"][0]["content"][0]["logprobs"] == []
    payloads = events(post(server, include=include, top_logprobs=1, stream=True))
    deltas = [p for p in payloads if p["type"] == "response.output_text.delta"]
    for position, delta in enumerate(deltas):
        [entry] = delta["logprobs"]
        assert entry["token"] == delta["delta"]
        assert entry["logprob"] == round(-1.0 - (position % 3) * 0.1, 6)
        assert len(entry["top_logprobs"]) == 1
    final = payloads[-1]["response"]["output"][0]["content"][0]
    assert len(final["logprobs"]) == len(deltas)


def test_json_schema_text_format_answers_valid_json(
    server: RunningServer, client: openai.OpenAI
) -> None:
    fmt = {"type": "json_schema", "name": "person", "schema": PERSON_SCHEMA, "strict": True}
    for seed in range(5):
        body = post(server, text={"format": fmt}, seed=seed).json()
        assert body["text"]["format"] == fmt
        text = body["output"][0]["content"][0]["text"]
        jsonschema.validate(json.loads(text), PERSON_SCHEMA)
    payloads = events(post(server, text={"format": fmt}, stream=True))
    streamed = "".join(p["delta"] for p in payloads if p["type"] == "response.output_text.delta")
    jsonschema.validate(json.loads(streamed), PERSON_SCHEMA)
    parsed = client.responses.parse(model="m", input="Plan a trip.", text_format=Trip)
    assert isinstance(parsed.output_parsed, Trip)
    assert parsed.output_parsed.destination.name
    obj = post(server, text={"format": {"type": "json_object"}}).json()
    assert isinstance(json.loads(obj["output"][0]["content"][0]["text"]), dict)


def test_max_output_tokens_cut_makes_the_response_incomplete_API_RESP_3(
    client: openai.OpenAI, server: RunningServer
) -> None:
    response = client.responses.create(
        model="m", input=QUESTION, max_output_tokens=5, extra_body={"ignore_eos": True}
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None and response.usage.output_tokens == 5
    assert response.output[0].status == "incomplete"  # type: ignore[union-attr]
    payloads = events(post(server, stream=True, max_output_tokens=4, ignore_eos=True))
    assert payloads[-1]["type"] == "response.incomplete"
    assert payloads[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    schema = {"format": {"type": "json_schema", "name": "p", "schema": PERSON_SCHEMA}}
    cut = post(server, text=schema, max_output_tokens=3).json()
    assert cut["status"] == "incomplete" and cut["usage"]["output_tokens"] == 3


def test_cache_threshold_stream_still_opens_and_closes_HDR_4(server: RunningServer) -> None:
    header = {"X-Cache-Threshold-Finish-Reason": "true"}
    payloads = events(post(server, headers=header, stream=True))
    assert names(payloads) == [*TEXT_EVENTS, *TEXT_CLOSING, "response.incomplete"]
    assert payloads[-1]["response"]["usage"]["output_tokens"] == 0
    body = post(server, headers=header, tools=[WEATHER]).json()
    assert body["status"] == "incomplete" and body["output"][0]["content"][0]["text"] == ""


def test_prefill_instance_returns_kv_transfer_params_API_PD_2(server: RunningServer) -> None:
    body = post(server, kv_transfer_params={"do_remote_decode": True}).json()
    assert body["kv_transfer_params"]["do_remote_prefill"] is True


def test_same_seed_same_answer_GEN_6(server: RunningServer) -> None:
    first = post(server, seed=42, max_output_tokens=30).json()
    again = post(server, seed=42, max_output_tokens=30).json()
    assert first["output"][0]["content"] == again["output"][0]["content"]
    call = post(server, seed=7, tools=[WEATHER]).json()["output"][0]
    same = post(server, seed=7, tools=[WEATHER]).json()["output"][0]
    assert call == same


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"input": None}, "input is required"),
        ({"input": []}, "input is required"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "'item_reference'"),
        ({"input": [{"role": "user", "content": [{"type": "input_file"}]}]}, "'input_file'"),
        ({"input": [{"content": "no type"}]}, "needs a type"),
        ({"tools": [{"type": "web_search"}]}, "'web_search'"),
        ({"max_output_tokens": 0}, "Max completion tokens and max tokens should be positive"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}},
            "tool with name 'nope'",
        ),
        ({"tool_choice": "sometimes", "tools": [WEATHER]}, "tool_choice"),
        ({"top_logprobs": 21}, "top_logprobs"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"ignore_eos": True}, "Ignore_eos is true"),
        (
            {"tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]},
            "Tool validation failed",
        ),
    ],
)
def test_bad_requests_are_400s_ERR_4_API_RESP_1(
    server: RunningServer, body: dict[str, Any], message: str
) -> None:
    response = post(server, **body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "BadRequestError" and error["code"] == 400
    assert message in error["message"]


def test_sdk_raises_typed_errors_ERR_1(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope", input=QUESTION)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="m", input=QUESTION, max_output_tokens=-1)
    assert "should be positive" in caught.value.message


def test_echo_mode_answers_the_last_input_item_API_RESP_7(server_factory: ServerFactory) -> None:
    echo = server_factory("version: 1\nmodel: {name: m}\nresponses: {mode: echo}\n")

    def answer(given: Any, **body: Any) -> str:
        result = post(echo, input=given, **body).json()
        return str(result["output"][0]["content"][0]["text"])

    assert answer("Say this back.") == "Say this back."
    parts = [{"type": "input_text", "text": "one"}, {"type": "input_text", "text": "two"}]
    assert answer([{"role": "user", "content": parts}]) == "one\ntwo"
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'}
    assert answer([{"role": "user", "content": "go"}, call]) == 'f({"a":1})'
    output = {"type": "function_call_output", "call_id": "c1", "output": "sunny"}
    assert answer([call, output], tools=[WEATHER]) == "sunny"
    fmt = {"format": {"type": "json_schema", "name": "p", "schema": PERSON_SCHEMA}}
    assert answer("Echo me", text=fmt) == "Echo me"
    body = post(echo, input="a b c d e f", max_output_tokens=2).json()
    assert body["status"] == "incomplete"
    assert body["output"][0]["content"][0]["text"] == "a b c d e f"
