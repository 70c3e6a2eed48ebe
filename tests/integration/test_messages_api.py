"""Anthropic Messages on ``/v1/messages``, as the official ``anthropic`` SDK and raw HTTP see
them (API-MSG-1 to API-MSG-4, DIFF-1)."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import jsonschema
import pytest

from tests.conftest import ServerFactory
from tests.support import RunningServer

WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 3},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        "required": ["city"],
    },
}
USER = [{"role": "user", "content": "What is the weather in Lisbon?"}]


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(
        "version: 1\nseed: 3\nmodel: {name: m}\nengine: {max-num-seqs: 16}\n"
        "latency: {time-to-first-token: 5ms, inter-token-latency: 1ms}\n"
    )


@pytest.fixture(scope="module")
def client(server: RunningServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key="x", max_retries=0)


def post(server: RunningServer, **body: Any) -> httpx.Response:
    payload = {"model": "m", "max_tokens": 20, "messages": USER, **body}
    return httpx.post(f"{server.base_url}/v1/messages", json=payload, timeout=30)


def events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """The stream's (event name, payload) pairs; every frame is a named event."""
    out = []
    for frame in response.text.strip().split("\n\n"):
        name, data = frame.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        payload = json.loads(data.removeprefix("data: "))
        assert payload["type"] == name.removeprefix("event: ")
        out.append((name.removeprefix("event: "), payload))
    return out


def test_sdk_parses_a_text_message_API_MSG_3(client: anthropic.Anthropic) -> None:
    message = client.messages.create(model="m", max_tokens=12, messages=USER)  # type: ignore[arg-type]
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.content[0].type == "text" and message.content[0].text
    assert message.stop_reason in {"end_turn", "max_tokens"}
    assert message.usage.input_tokens > 0 and 1 <= message.usage.output_tokens <= 12


def test_sdk_stream_accumulates_text_DIFF_1(client: anthropic.Anthropic) -> None:
    with client.messages.stream(model="m", max_tokens=30, messages=USER) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.usage.output_tokens >= 1 and final.stop_reason in {"end_turn", "max_tokens"}


def test_sdk_tool_use_streamed_and_not_API_MSG_1_API_MSG_3(client: anthropic.Anthropic) -> None:
    message = client.messages.create(
        model="m",
        max_tokens=200,
        messages=USER,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "any"},
    )
    assert message.stop_reason == "tool_use"
    uses = [block for block in message.content if block.type == "tool_use"]
    assert uses and all(u.name == "get_weather" and u.id.startswith("toolu_") for u in uses)
    for use in uses:
        jsonschema.validate(use.input, WEATHER["input_schema"])  # type: ignore[arg-type]
    with client.messages.stream(
        model="m",
        max_tokens=200,
        messages=USER,  # type: ignore[arg-type]
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "tool", "name": "get_weather"},
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    [use] = final.content
    assert use.type == "tool_use" and use.name == "get_weather"
    jsonschema.validate(use.input, WEATHER["input_schema"])  # type: ignore[arg-type]


def test_tool_results_in_a_later_turn_are_part_of_the_prompt_API_MSG_1(
    client: anthropic.Anthropic,
) -> None:
    first = client.messages.create(
        model="m",
        max_tokens=100,
        messages=USER,
        tools=[WEATHER],
        tool_choice={"type": "any"},  # type: ignore[arg-type, list-item]
    )
    use = next(block for block in first.content if block.type == "tool_use")
    follow_up = [
        *USER,
        {"role": "assistant", "content": [use.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 25C"}],
        },
    ]
    second = client.messages.create(
        model="m",
        max_tokens=30,
        messages=follow_up,
        tools=[WEATHER],
        tool_choice={"type": "none"},  # type: ignore[arg-type, list-item]
    )
    assert second.content[0].type == "text"
    assert second.usage.input_tokens > first.usage.input_tokens


def test_stream_event_order_API_MSG_4(server: RunningServer) -> None:
    response = post(server, stream=True, max_tokens=5, ignore_eos=True)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    names = [name for name, _ in events(response)]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 5,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    payloads = dict(events(response))
    assert payloads["message_start"]["message"]["content"] == []
    assert payloads["message_start"]["message"]["stop_reason"] is None
    assert payloads["content_block_start"]["content_block"] == {"type": "text", "text": ""}
    delta = payloads["message_delta"]["delta"]
    assert delta == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert payloads["message_delta"]["usage"] == {"output_tokens": 5}
    assert "[DONE]" not in response.text


def test_streamed_tool_calls_open_and_close_one_block_each_API_MSG_4(
    server: RunningServer,
) -> None:
    other = {**WEATHER, "name": "get_time"}
    for seed in range(20):
        response = post(
            server, stream=True, max_tokens=300, tools=[WEATHER, other], seed=seed,
            tool_choice={"type": "any"},
        )  # fmt: skip
        stream = events(response)
        starts = [p["index"] for n, p in stream if n == "content_block_start"]
        stops = [p["index"] for n, p in stream if n == "content_block_stop"]
        assert starts == stops == list(range(len(starts)))
        assert stream[1][0] == "ping"
        for index in starts:
            partial = "".join(
                p["delta"]["partial_json"]
                for n, p in stream
                if n == "content_block_delta" and p["index"] == index
            )
            jsonschema.validate(json.loads(partial), WEATHER["input_schema"])
        if len(starts) > 1:
            return
    pytest.fail("no seed gave two calls")


def test_system_and_images_count_as_prompt_tokens_API_MSG_1(server: RunningServer) -> None:
    plain = post(server).json()["usage"]["input_tokens"]
    with_system = post(server, system="You are terse.").json()["usage"]["input_tokens"]
    as_blocks = post(server, system=[{"type": "text", "text": "You are terse."}])
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}}
    with_image = post(
        server, messages=[{"role": "user", "content": [image, {"type": "text", "text": "Hi"}]}]
    )
    assert with_system > plain
    assert as_blocks.json()["usage"]["input_tokens"] == with_system
    assert with_image.status_code == 200
    assert with_image.json()["usage"]["input_tokens"] >= 256


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"max_tokens": None}, "max_tokens is required"),
        ({"messages": []}, "messages must not be empty"),
        ({"max_tokens": 0}, "should be positive"),
        ({"tool_choice": {"type": "tool"}, "tools": [WEATHER]}, "needs a name"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image"}]}]},
            "image block has no source",
        ),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
    ],
)
def test_bad_requests_get_anthropic_error_bodies_API_MSG_2(
    server: RunningServer, body: dict[str, Any], message: str
) -> None:
    response = post(server, **body)
    assert response.status_code == 400
    error = response.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert message in error["error"]["message"]


def test_a_wrong_method_is_405_in_anthropic_shape(server: RunningServer) -> None:
    response = httpx.get(f"{server.base_url}/v1/messages")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["type"] == "error"


def test_sdk_raises_its_typed_errors(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(model="nope", max_tokens=5, messages=USER)  # type: ignore[arg-type]
    assert "does not exist" in caught.value.message
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="m", max_tokens=-1, messages=USER)  # type: ignore[arg-type]


def test_echo_mode_answers_the_last_turn_and_tool_results(server_factory: ServerFactory) -> None:
    echo = server_factory("version: 1\nmodel: {name: m}\nresponses: {mode: echo}\n")
    answer = post(echo, messages=[{"role": "user", "content": "Say this back."}]).json()
    assert answer["content"] == [{"type": "text", "text": "Say this back."}]
    assert answer["stop_reason"] == "end_turn"
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
        {"type": "text", "text": "sunny"}, {"type": "text", "text": "warm"},
    ]}  # fmt: skip
    answer = post(echo, messages=[{"role": "user", "content": [result]}]).json()
    assert answer["content"][0]["text"] == "sunny\nwarm"


def test_cache_threshold_header_gives_max_tokens_HDR_4(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/messages",
        json={"model": "m", "max_tokens": 5, "messages": USER, "stream": True},
        headers={"X-Cache-Threshold-Finish-Reason": "true"},
        timeout=30,
    )
    names = [name for name, _ in events(response)]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert dict(events(response))["message_delta"]["delta"]["stop_reason"] == "max_tokens"
