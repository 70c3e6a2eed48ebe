"""Replay of recent KV-event batches to a client that missed some (ZMQ-5).

``ReplayBuffer`` keeps the last N published batches as ``(seq, payload)``; ``serve_replay``
answers requests on a bound ROUTER socket: ``[identity, b"", start_seq]`` gets every kept batch
with ``seq >= start_seq`` as ``[identity, b"", topic, seq, payload]``, then the sentinel
``[identity, b"", b"", 0xFFFFFFFFFFFFFFFF, b""]``. Lost history is not signalled, and requests of
any other shape are ignored. This module never publishes and never decides what is kept beyond
the ring size.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque

import zmq
import zmq.asyncio

from llmsim.events.encoding import END_OF_REPLAY, decode_sequence, encode_sequence

logger = logging.getLogger(__name__)

_SENTINEL_SEQUENCE = encode_sequence(END_OF_REPLAY)


class ReplayBuffer:
    """The last ``size`` batches, oldest first; their sequence numbers are consecutive."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"replay queue size must be >= 1, got {size}")
        self._batches: deque[tuple[int, bytes]] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._batches)

    def append(self, seq: int, payload: bytes) -> None:
        """Keep a batch, forgetting the oldest when full."""
        self._batches.append((seq, payload))

    def since(self, start_seq: int) -> list[tuple[int, bytes]]:
        """The kept batches with ``seq >= start_seq``, in order (a snapshot, safe to await over)."""
        if not self._batches:
            return []
        skip = max(0, start_seq - self._batches[0][0])
        return list(itertools.islice(self._batches, skip, None))


def parse_request(frames: list[bytes]) -> tuple[bytes, int] | None:
    """``(identity, start_seq)`` of a well-formed replay request, else None."""
    if len(frames) != 3 or frames[1] != b"" or len(frames[2]) < 8:
        return None
    return frames[0], decode_sequence(frames[2])


async def serve_replay(socket: zmq.asyncio.Socket, buffer: ReplayBuffer, topic: bytes) -> None:
    """Answer replay requests on a bound ROUTER socket until cancelled."""
    while True:
        frames = await socket.recv_multipart()
        request = parse_request(frames)
        if request is None:
            logger.debug("ignoring malformed KV-event replay request of %d frames", len(frames))
            continue
        identity, start_seq = request
        # A ROUTER drops (never blocks on) messages to a peer that is gone or full.
        try:
            for seq, payload in buffer.since(start_seq):
                await socket.send_multipart([identity, b"", topic, encode_sequence(seq), payload])
            await socket.send_multipart([identity, b"", b"", _SENTINEL_SEQUENCE, b""])
        except zmq.ZMQError as error:
            logger.warning("KV-event replay reply failed: %s", error)
