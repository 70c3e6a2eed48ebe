"""``/v1/embeddings`` as clients see it: vectors, formats, usage and errors (API-EMB-1, DIFF-5,
CLIENT-2)."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ServerFactory
from tests.support import RunningServer

SCENARIO = """
version: 1
model: {name: base/embedder, served-model-name: [emb, emb-alias]}
lora:
  lora-modules:
    - {name: emb-lora, path: /adapters/emb}
"""


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="unused") as sdk:
        yield sdk


def embed(server: RunningServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v1/embeddings", json=body, timeout=30)


def vectors(server: RunningServer, body: dict[str, Any]) -> list[Any]:
    response = embed(server, body)
    assert response.status_code == 200, response.text
    return [item["embedding"] for item in response.json()["data"]]


def expected_vector(ids: list[int], dimensions: int) -> list[float]:
    """Upstream's formula, then unit length, as float32."""
    ids = [max(t, 0) for t in ids]
    n = len(ids)
    raw = [
        2 * (ids[i] % 1024) / 1024 - 1 if i < n else 2 * (ids[i % n] % 256) / 256 - 1
        for i in range(dimensions)
    ]
    norm = math.sqrt(sum(v * v for v in raw))
    return [struct.unpack("<f", struct.pack("<f", v / norm))[0] for v in raw]


def length(vector: list[float]) -> float:
    return math.sqrt(sum(v * v for v in vector))


def test_openai_sdk_gets_base64_vectors_equal_to_float_ones_CLIENT_2(
    server: RunningServer, client: openai.OpenAI
) -> None:
    texts = ["hello world", "the quick brown fox"]
    result = client.embeddings.create(model="emb", input=texts)
    floats = vectors(server, {"model": "emb", "input": texts, "encoding_format": "float"})
    assert [item.index for item in result.data] == [0, 1]
    assert [list(item.embedding) for item in result.data] == floats
    assert all(len(vector) == 384 for vector in floats)
    assert all(abs(length(vector) - 1) < 1e-6 for vector in floats)
    short = client.embeddings.create(model="emb", input=texts, dimensions=8)
    assert [len(item.embedding) for item in short.data] == [8, 8]
    assert all(abs(length(list(item.embedding)) - 1) < 1e-6 for item in short.data)


def test_base64_is_little_endian_float32_of_the_float_values(server: RunningServer) -> None:
    body: dict[str, Any] = {"input": [[1, 2, 3], [700, 9]], "dimensions": 16}
    floats = vectors(server, body)
    encoded = vectors(server, {**body, "encoding_format": "base64"})
    decoded = [list(struct.unpack("<16f", base64.b64decode(text))) for text in encoded]
    assert decoded == floats


def test_token_ids_follow_the_formula_then_unit_length_DIFF_5(server: RunningServer) -> None:
    ids = [5, 1030, -3, 70000, 4294967295]
    got = vectors(server, {"input": [ids, [7]], "dimensions": 12})
    assert got == [expected_vector(ids, 12), expected_vector([7], 12)]
    assert vectors(server, {"input": ids, "dimensions": 3}) == [expected_vector(ids, 3)]


def test_same_input_same_vector_and_different_inputs_differ(server: RunningServer) -> None:
    first = vectors(server, {"input": ["a cat sat", "a dog ran", "a cat sat"]})
    again = vectors(server, {"input": "a cat sat"})
    assert first[0] == first[2] == again[0]
    assert first[0] != first[1]


def test_usage_counts_tokens_indices_follow_order_and_model_echoes(
    server: RunningServer,
) -> None:
    texts = ["This is a test.", "one", "two words"]
    counts = [
        httpx.post(f"{server.base_url}/tokenize", json={"prompt": t}).json()["count"] for t in texts
    ]
    response = embed(server, {"model": "emb-alias", "input": texts, "user": "someone"}).json()
    assert response["object"] == "list"
    assert response["model"] == "emb-alias"
    assert [(d["object"], d["index"]) for d in response["data"]] == [
        ("embedding", 0),
        ("embedding", 1),
        ("embedding", 2),
    ]
    assert response["usage"] == {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}
    ids = embed(server, {"input": [[1, 2], [3, 4, 5]]}).json()
    assert ids["model"] == "emb"
    assert ids["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert embed(server, {"model": "", "input": "x"}).json()["model"] == "emb"
    assert embed(server, {"model": "emb-lora", "input": "x"}).json()["model"] == "emb-lora"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "input is required and must be a non-empty string or array"),
        ({"input": None}, "input is required and must be a non-empty string or array"),
        ({"input": ""}, "input is required and must be a non-empty string or array"),
        ({"input": []}, "input is required and must be a non-empty string or array"),
        ({"input": ["a", 1]}, "input is required and must be a non-empty string or array"),
        ({"input": [1, [2]]}, "input is required and must be a non-empty string or array"),
        ({"input": [[1], []]}, "input is required and must be a non-empty string or array"),
        ({"input": ["a", ""]}, "input cannot be an empty string"),
        ({"input": "a", "dimensions": 0}, "dimensions must be at least 1"),
        ({"input": "a", "dimensions": -4}, "dimensions must be at least 1"),
        ({"input": "a", "dimensions": 65537}, "dimensions must be at most 65536"),
        ({"input": [[4294967296]]}, "token ids must be at most 4294967295"),
    ],
)
def test_bad_requests_are_400_with_upstream_messages_API_EMB_1(
    server: RunningServer, body: dict[str, Any], message: str
) -> None:
    response = embed(server, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"] == message
    assert (error["type"], error["code"]) == ("BadRequestError", 400)


@pytest.mark.parametrize(
    "body",
    [
        {"input": 5},
        {"input": {"text": "a"}},
        {"input": [1.5]},
        {"input": "a", "encoding_format": "hex"},
        {"input": "a", "dimensions": "8"},
    ],
)
def test_wrong_types_are_400(server: RunningServer, body: dict[str, Any]) -> None:
    response = embed(server, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400


def test_unknown_model_is_404(server: RunningServer) -> None:
    response = embed(server, {"model": "nope", "input": "a"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "The model `nope` does not exist."


def test_a_hundred_inputs_give_a_hundred_vectors(server: RunningServer) -> None:
    texts = [f"input number {i}" for i in range(100)]
    response = embed(server, {"input": texts}).json()
    assert [d["index"] for d in response["data"]] == list(range(100))
    assert len({tuple(d["embedding"]) for d in response["data"]}) == 100


def test_too_many_values_in_one_request_is_a_400(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/embeddings",
        json={"model": "emb", "input": ["a"] * 17, "dimensions": 65536},
    )
    assert response.status_code == 400
    assert "values in one request" in response.json()["error"]["message"]
