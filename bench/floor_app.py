"""The floor: a bare ASGI app doing the least a simulator must do, served like llmsim.

Non-streamed chat requests get a fixed JSON answer built with orjson; streamed ones get
``max_tokens`` SSE frames, each written at its absolute deadline (TTFT, then one ITL apart,
from ``time.perf_counter``), then ``[DONE]``. Nothing is parsed beyond the body's JSON. Usage:
``python bench/floor_app.py --port 8001 --ttft-ms 100 --itl-ms 10``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream")]
TOKEN = b'data: {"choices":[{"index":0,"delta":{"content":"tok "}}]}\n\n'


class FloorApp:
    """Answers POSTs on any path; GET /health with 200."""

    def __init__(self, ttft: float, itl: float):
        self.ttft = ttft
        self.itl = itl

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["method"] == "GET":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        request = orjson.loads(body)
        tokens = int(request.get("max_tokens") or 10)
        if not request.get("stream"):
            message = {"role": "assistant", "content": "tok " * tokens}
            answer = {
                "id": "chatcmpl-floor",
                "object": "chat.completion",
                "choices": [{"index": 0, "message": message, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": tokens},
            }
            await send({"type": "http.response.start", "status": 200, "headers": JSON_HEADERS})
            await send({"type": "http.response.body", "body": orjson.dumps(answer)})
            return
        deadline = time.perf_counter() + self.ttft
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        for _ in range(tokens):
            delay = deadline - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": TOKEN, "more_body": True})
            deadline += self.itl
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n"})


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[Any] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets)
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)


def main() -> None:
    """Serve the floor app with uvicorn, uvloop and httptools, access log off."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--itl-ms", type=float, default=0.0)
    args = parser.parse_args()
    app = FloorApp(args.ttft_ms / 1000, args.itl_ms / 1000)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
        access_log=False, log_level="warning", lifespan="on",
    )  # fmt: skip
    _Server(config).run()


if __name__ == "__main__":
    main()
