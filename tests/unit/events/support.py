"""Real ZMQ peers for the KV-event tests: a binding subscriber, a replay client, time bounds."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import msgpack  # type: ignore[import-untyped]
import zmq
import zmq.asyncio

from llmsim.events import KVEventPublisher

T = TypeVar("T")

TEST_TIMEOUT = 5.0
RECEIVE_TIMEOUT = 2.0
END_OF_REPLAY = b"\xff" * 8


def run(coro: Coroutine[Any, Any, T], timeout: float = TEST_TIMEOUT) -> T:
    """Run a test coroutine on a fresh event loop, failing it if it takes too long."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def free_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"


@dataclass
class Batch:
    """One received batch: the raw frames and the decoded payload."""

    topic: bytes
    seq_frame: bytes
    payload: bytes

    @property
    def seq(self) -> int:
        return int.from_bytes(self.seq_frame, "big")

    @property
    def decoded(self) -> Any:
        return msgpack.unpackb(self.payload)

    @property
    def events(self) -> list[Any]:
        events: list[Any] = self.decoded[1]
        return events


class Subscriber:
    """A SUB socket bound on a free port (the publisher connects to it)."""

    def __init__(self, context: zmq.asyncio.Context, topic: str, endpoint: str = ""):
        self.socket = context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        if endpoint:
            self.socket.bind(endpoint)
            self.endpoint = endpoint
        else:
            port = self.socket.bind_to_random_port("tcp://127.0.0.1")
            self.endpoint = f"tcp://127.0.0.1:{port}"
        self.skip_through = 0
        """Batches with a sequence number up to this one are probes and are skipped."""

    async def join(self, publisher: KVEventPublisher) -> float:
        """Publish probe batches until one arrives (ZMQ's slow joiner), so later batches are
        delivered; returns the monotonic time just before the last probe was flushed."""
        while True:
            publisher.all_blocks_cleared()
            flushed_at = time.monotonic()
            publisher.flush()
            self.skip_through += 1
            if await self.socket.poll(20):
                return flushed_at

    async def receive(self, timeout: float = RECEIVE_TIMEOUT) -> Batch:
        """The next batch after the probes."""
        async with asyncio.timeout(timeout):
            while True:
                frames = await self.socket.recv_multipart()
                assert len(frames) == 3
                batch = Batch(*frames)
                if batch.seq > self.skip_through:
                    return batch

    async def nothing_within(self, seconds: float) -> bool:
        """Whether no batch (other than a probe) arrives within ``seconds``."""
        try:
            await self.receive(seconds)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.socket.close(linger=0)


class ReplayClient:
    """A DEALER asking a replay ROUTER for batches (it adds the empty delimiter itself)."""

    def __init__(self, context: zmq.asyncio.Context, endpoint: str):
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    async def send(self, *frames: bytes) -> None:
        await self.socket.send_multipart(list(frames))

    async def ask(self, start_seq: int) -> None:
        await self.send(b"", start_seq.to_bytes(8, "big"))

    async def replies(self, timeout: float = RECEIVE_TIMEOUT) -> list[list[bytes]]:
        """Reply messages (without the delimiter) up to and including the sentinel."""
        replies: list[list[bytes]] = []
        async with asyncio.timeout(timeout):
            while True:
                frames = await self.socket.recv_multipart()
                assert frames[0] == b""
                replies.append(frames[1:])
                if frames[1:] == [b"", END_OF_REPLAY, b""]:
                    return replies

    def close(self) -> None:
        self.socket.close(linger=0)
