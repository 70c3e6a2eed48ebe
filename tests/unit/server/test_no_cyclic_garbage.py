"""A request leaves no cyclic garbage: reference counting frees all of it, so the server can
run with a large young generation (see runner.GC_GEN0_THRESHOLD) without holding memory."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import MutableMapping
from typing import Any

import pytest

from llmsim.plan.compile import compile_scenario
from llmsim.scenario.loader import load_scenario_text
from llmsim.server.app import LlmsimApp, create_app

SCENARIO = """
version: 1
model: {name: m}
latency: {time-to-first-token: 2ms, inter-token-latency: 1ms}
"""
CHAT = b'{"model":"m","messages":[{"role":"user","content":"Hi"}],"max_tokens":5%s}'
BODIES = {
    "answer": CHAT % b"",
    "stream": CHAT % b',"stream":true',
    "unknown model": b'{"model":"nope","messages":[{"role":"user","content":"Hi"}]}',
    "not json": b"{",
}


async def exchange(app: LlmsimApp, body: bytes, leave_after_parts: int | None = None) -> int:
    """One request through the ASGI app; the client leaves after ``leave_after_parts`` body
    parts when given. The response status."""
    gone = asyncio.Event()
    status = 0
    parts = 0
    requested = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal status, parts
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message.get("more_body"):
            parts += 1
        if leave_after_parts is not None and parts >= leave_after_parts:
            gone.set()
        if not message.get("more_body", message["type"] == "http.response.start"):
            gone.set()  # the response is complete: a server's receive() then says so

    scope = {"type": "http", "path": "/v1/chat/completions", "method": "POST", "headers": []}
    await app(scope, receive, send)
    return status


@pytest.mark.parametrize("kind", [*BODIES, "client leaves mid-stream"])
def test_requests_leave_no_cyclic_garbage(kind: str) -> None:
    app = create_app(compile_scenario(load_scenario_text(SCENARIO, "gc.yaml")), environ={})

    async def run() -> list[int]:
        await app.simulator.startup()
        body = BODIES.get(kind, BODIES["stream"])
        leave = 2 if kind == "client leaves mid-stream" else None
        await asyncio.gather(*(exchange(app, body, leave) for _ in range(5)))  # warm
        gc.collect()
        gc.disable()
        try:
            statuses = await asyncio.gather(*(exchange(app, body, leave) for _ in range(20)))
            await asyncio.sleep(0.01)  # let cancelled watchers finish
            assert gc.collect() == 0
        finally:
            gc.enable()
        await app.simulator.shutdown()
        return statuses

    statuses = asyncio.run(run())
    expected = {"unknown model": 404, "not json": 400}.get(kind, 200)
    assert set(statuses) == {expected}
