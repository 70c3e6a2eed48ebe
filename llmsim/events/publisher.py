"""Publish the engine's KV-cache events on ZMQ in batches, as vLLM does (ZMQ-1 to ZMQ-5).

Events are encoded when reported and kept pending; a batch goes out when ``batch_size`` events
are pending or when ``flush_interval`` has passed since the last flush (ZMQ-2). Each batch is
one 3-frame message ``[topic, seq, payload]`` on a PUB socket that connects to ``endpoint``;
with ``replay_endpoint`` set, the last batches are also kept for replay on a bound ROUTER socket.
Publishing must never block or slow the engine: sends are non-blocking on the event-loop thread,
and a batch ZMQ cannot take is dropped and counted. Nothing here looks at the KV cache itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import zmq
import zmq.asyncio

from llmsim.events import encoding
from llmsim.events.encoding import Event, encode_sequence, pack_batch
from llmsim.events.replay import ReplayBuffer, serve_replay

logger = logging.getLogger(__name__)

SEND_HIGH_WATER_MARK = 10_000
CLOSE_LINGER_MS = 200
"""How long the last batches may take to leave when the publisher closes (shutdown only)."""
"""Batches ZMQ may queue per subscriber before it drops them (PUB never blocks)."""


class KVEventPublisher:
    """One rank's KV-event stream: batching, sequence numbers, PUB socket and replay ring."""

    def __init__(
        self,
        endpoint: str,
        topic: str,
        batch_size: int,
        map_format: bool,
        data_parallel_rank: int,
        replay_endpoint: str = "",
        replay_queue_size: int = 1024,
        flush_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"event batch size must be >= 1, got {batch_size}")
        if flush_interval <= 0:
            raise ValueError(f"flush interval must be > 0, got {flush_interval}")
        self.endpoint = endpoint
        self.topic = topic
        self.replay_endpoint = replay_endpoint
        self._topic = topic.encode()
        self._batch_size = batch_size
        self._map_format = map_format
        self._rank = data_parallel_rank
        self._flush_interval = flush_interval
        self._clock = clock
        self._replay = ReplayBuffer(replay_queue_size) if replay_endpoint else None
        self._pending: list[Event] = []
        self._seq = 0
        self._last_flush = time.monotonic()
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self._pub: zmq.Socket[bytes] | None = None
        self._router: zmq.asyncio.Socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self.dropped_batches = 0
        """Batches ZMQ refused to take at once (``zmq.Again``); they are still kept for replay."""

    def block_stored(
        self,
        block_hashes: list[int],
        parent_block_hash: int | None,
        token_ids: list[int],
        block_size: int,
        lora_id: int | None,
        lora_name: str | None,
    ) -> None:
        """Report new blocks of one request (KV-5): parent None means no cached parent."""
        self._add(
            encoding.block_stored(
                block_hashes,
                parent_block_hash,
                token_ids,
                block_size,
                lora_id,
                lora_name,
                map_format=self._map_format,
            )
        )

    def blocks_removed(self, block_hashes: list[int]) -> None:
        """Report evicted blocks."""
        self._add(encoding.block_removed(block_hashes, map_format=self._map_format))

    def all_blocks_cleared(self) -> None:
        """Report that the whole cache was emptied (sleep)."""
        self._add(encoding.all_blocks_cleared(map_format=self._map_format))

    def _add(self, event: Event) -> None:
        if self._closed:
            return
        self._pending.append(event)
        if len(self._pending) >= self._batch_size:
            self.flush()

    def flush(self) -> None:
        """Send the pending events now as one batch; a no-op when none are pending or before
        ``start`` (events reported before then wait for the first flush after it)."""
        if not self._pending or self._pub is None:
            return
        events, self._pending = self._pending, []
        payload = pack_batch(self._clock(), events, self._rank)
        self._seq += 1
        self._last_flush = time.monotonic()
        if self._replay is not None:
            self._replay.append(self._seq, payload)
        try:
            self._pub.send_multipart(
                [self._topic, encode_sequence(self._seq), payload], flags=zmq.NOBLOCK
            )
        except zmq.Again:
            self.dropped_batches += 1

    async def start(self) -> None:
        """Connect the PUB socket, bind the replay socket if configured, start the tasks."""
        if self._context is not None:
            raise RuntimeError("KV event publisher already started")
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            pub = context.socket(zmq.PUB)
            pub.setsockopt(zmq.LINGER, 0)
            pub.setsockopt(zmq.SNDHWM, SEND_HIGH_WATER_MARK)
            pub.connect(self.endpoint)  # ZMQ keeps retrying until the peer is there
            router = None
            if self.replay_endpoint:
                router = zmq.asyncio.Context(context).socket(zmq.ROUTER)
                router.setsockopt(zmq.LINGER, 0)
                router.bind(self.replay_endpoint)
        except BaseException:
            context.destroy(linger=0)
            raise
        self._context, self._pub, self._router = context, pub, router
        self._last_flush = time.monotonic()
        self._tasks.append(asyncio.create_task(self._flush_periodically()))
        if router is not None and self._replay is not None:
            self._tasks.append(asyncio.create_task(serve_replay(router, self._replay, self._topic)))
        logger.info(
            "publishing KV events to %s, topic %s%s",
            self.endpoint,
            self.topic,
            f", replay on {self.replay_endpoint}" if router is not None else "",
        )

    async def close(self) -> None:
        """Flush, stop the tasks and close the sockets; idempotent. The PUB socket lingers
        briefly so that the last batch can still leave; the replay socket does not linger."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._router is not None:
            self._router.close(linger=0)
        if self._pub is not None:
            self._pub.close(linger=CLOSE_LINGER_MS)
        self._router = self._pub = None
        if self._context is not None:
            self._context.term()
            self._context = None

    async def _flush_periodically(self) -> None:
        while True:
            # Any flush restarts the period, so re-read the deadline after every wake-up.
            delay = self._last_flush + self._flush_interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            try:
                self.flush()
            except Exception:
                logger.exception("failed to publish a KV event batch; it is lost")
            self._last_flush = time.monotonic()
