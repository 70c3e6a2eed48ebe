"""One HTTP exchange at the ASGI level, for the lean generation routes.

Reads the body under a size limit, sends JSON or a stream of pre-encoded frames, and sleeps to
absolute deadlines. While a request waits (in the queue or for a deadline) a watcher listens for
the client going away and cancels the request's task, so its slot or queue place is freed at
once. The watcher is started only when the request first has to wait: a request answered at
once costs no extra task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from llmsim.errors import PayloadTooLarge
from llmsim.server.http_metrics import CountedSend
from llmsim.server.json_bytes import json_bytes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class ClientGone(Exception):
    """The client closed the connection before the request was complete."""


class Connection:
    """The request side and the response side of one lean-route exchange."""

    __slots__ = (
        "_counted", "_receive", "_send", "_started", "_task", "_watcher", "disconnected",
        "finished", "headers",
    )  # fmt: skip

    def __init__(self, receive: Receive, send: Send):
        self._receive = receive
        self._counted: CountedSend | None = None
        if type(send) is CountedSend:
            self._counted = send
            send = send.send
        self._send = send
        self.headers: list[tuple[bytes, bytes]] = []
        """Headers added to a successful response (pod identity, request id)."""
        self._task: asyncio.Task[Any] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._started = False
        self.disconnected = False
        self.finished = False

    @property
    def started(self) -> bool:
        """Whether the response status line has been sent."""
        return self._started

    async def read_body(self, limit: int) -> bytes:
        """The whole request body; ``PayloadTooLarge`` beyond ``limit`` bytes."""
        message = await self._receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise PayloadTooLarge(_too_large(limit))
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self.disconnected = True
                raise ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(_too_large(limit))
            chunks.append(chunk)
        return b"".join(chunks)

    def watch(self) -> None:
        """Start listening for a disconnect (idempotent); call from the request's task."""
        if self._watcher is None:
            self._task = asyncio.current_task()
            if self._task is not None:
                self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        try:
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    if not self.finished and self._task is not None:
                        self.disconnected = True
                        self._task.cancel()
                    return
        except asyncio.CancelledError:
            # Stopped by close(): end quietly, so that no exception, traceback and frames
            # form a cycle with this connection (cyclic garbage waits for the collector).
            return

    def close(self) -> None:
        """Stop the watcher; call when the exchange is over however it ended."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()

    async def sleep_until(self, deadline: float) -> None:
        """Return at ``deadline`` (a ``time.perf_counter`` time), at once if it has passed."""
        delay = deadline - time.perf_counter()
        if delay > 0:
            self.watch()
            await asyncio.sleep(delay)

    async def respond(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = JSON_HEADERS
    ) -> None:
        """Send a complete response, with its length (as vLLM does)."""
        self.finished = True
        self._started = True
        length = (b"content-length", b"%d" % len(body))
        headers = [*headers, *self.headers, length] if status == 200 else [*headers, length]
        if self._counted is not None:
            self._counted.start(status)
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    async def respond_json(self, status: int, body: object) -> None:
        """Send a complete JSON response."""
        await self.respond(status, json_bytes(body))

    async def _start_stream(self) -> None:
        self._started = True
        headers = SSE_HEADERS + self.headers if self.headers else SSE_HEADERS
        if self._counted is not None:
            self._counted.start(200)
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})

    async def body_sender(self) -> Send:
        """The raw ASGI ``send`` for the body parts of a stream, started first if need be."""
        if not self._started:
            await self._start_stream()
        return self._send

    async def write(self, frame: bytes) -> None:
        """Send part of a stream, starting the response on the first call."""
        if not self._started:
            await self._start_stream()
        await self._send({"type": "http.response.body", "body": frame, "more_body": True})

    async def end(self, frame: bytes) -> None:
        """Send the last part of a stream and finish the response."""
        self.finished = True
        if not self._started:
            await self._start_stream()
        await self._send({"type": "http.response.body", "body": frame, "more_body": False})


def _too_large(limit: int) -> str:
    return f"Request body is larger than the limit of {limit // (1024 * 1024)} MB"
