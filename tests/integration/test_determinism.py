"""Same seed + same requests in the same order -> byte-identical bodies (GEN-6)."""

from __future__ import annotations

import json
import re

import httpx

from tests.conftest import ServerFactory
from tests.support import RunningServer

SCENARIO = """
version: 1
seed: 1234
model: {name: det, max-model-len: 512}
latency:
  time-to-first-token: 2ms
  time-to-first-token-std-dev: 500us
  inter-token-latency: 1ms
"""
REQUESTS: list[tuple[str, dict[str, object]]] = [
    ("/v1/chat/completions", {"model": "det", "messages": [{"role": "user", "content": "a"}]}),
    ("/v1/completions", {"model": "det", "prompt": "b", "max_tokens": 50}),
    (
        "/v1/chat/completions",
        {"model": "det", "messages": [{"role": "user", "content": "c"}], "stream": True},
    ),
    ("/v1/completions", {"model": "det", "prompt": "d", "stream": True, "max_tokens": 30}),
    ("/v1/chat/completions", {"model": "det", "messages": [{"role": "user", "content": "e"}]}),
]
VOLATILE = re.compile(rb'"(id|created)":("[^"]*"|\d+)')


def transcript(server: RunningServer) -> list[bytes]:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        return [VOLATILE.sub(b"", client.post(path, json=body).content) for path, body in REQUESTS]


def test_same_seed_and_requests_give_identical_bytes_GEN_6(server_factory: ServerFactory) -> None:
    first = transcript(server_factory(SCENARIO))
    second = transcript(server_factory(SCENARIO))
    assert first == second
    texts = {json.dumps(b.decode()) for b in first}
    assert len(texts) == len(REQUESTS)


def test_another_seed_gives_other_text(server_factory: ServerFactory) -> None:
    first = transcript(server_factory(SCENARIO))
    other = transcript(server_factory(SCENARIO.replace("seed: 1234", "seed: 99")))
    assert first != other


def test_request_ids_follow_upstream_uuid5_rule_HDR_3(server_factory: ServerFactory) -> None:
    import uuid

    server = server_factory(SCENARIO)
    body = httpx.post(f"{server.base_url}{REQUESTS[0][0]}", json=REQUESTS[0][1]).json()
    expected = uuid.uuid5(uuid.NAMESPACE_URL, f"1234-{server.port}-0")
    assert body["id"] == f"chatcmpl-{expected}"
