"""Same seed + same requests in the same order -> byte-identical bodies (GEN-6)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

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
    server = server_factory(SCENARIO)
    body = httpx.post(f"{server.base_url}{REQUESTS[0][0]}", json=REQUESTS[0][1]).json()
    expected = uuid.uuid5(uuid.NAMESPACE_URL, f"1234-{server.port}-0")
    assert body["id"] == f"chatcmpl-{expected}"


LONG_SCENARIO = SCENARIO.replace("max-model-len: 512", "max-model-len: 1000000")
LONG_PROMPTS = {400_000: "word " * 400_000, 399_999: "word " * 399_999}
"""Prompts by token count, 2M characters each: counted in pieces, letting other requests run
in between."""


async def _long_requests(port: int, prompts: list[str]) -> list[tuple[int, bytes]]:
    """The prompts as completion requests, all at once: (the server's arrival number, body
    without volatile fields) each, in arrival order."""
    numbers = {f"cmpl-{uuid.uuid5(uuid.NAMESPACE_URL, f'1234-{port}-{n}')}": n for n in range(9)}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        answers = await asyncio.gather(
            *(
                client.post("/v1/completions", json={"model": "det", "prompt": p, "max_tokens": 20})
                for p in prompts
            )
        )
    return sorted((numbers[a.json()["id"]], VOLATILE.sub(b"", a.content)) for a in answers)


def test_long_prompts_counted_together_answer_as_when_sent_one_by_one_GEN_6(
    server_factory: ServerFactory,
) -> None:
    together = [
        body
        for _, body in asyncio.run(
            _long_requests(server_factory(LONG_SCENARIO).port, list(LONG_PROMPTS.values()))
        )
    ]
    counts = [int(re.search(rb'"prompt_tokens":(\d+)', body)[1]) for body in together]  # type: ignore[index]
    arrival = [LONG_PROMPTS[count] for count in counts]
    port = server_factory(LONG_SCENARIO).port
    one_by_one = [
        body for prompt in arrival for _, body in asyncio.run(_long_requests(port, [prompt]))
    ]
    assert together == one_by_one
