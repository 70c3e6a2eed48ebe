"""Independent block-hash arithmetic for tests (FNV-1a-64 and canonical CBOR written out here),
and a ZMQ subscriber that collects KV events with plain msgpack."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgpack
import zmq


def fnv64(data: bytes) -> int:
    h = 14695981039346656037
    for b in data:
        h = ((h ^ b) * 1099511628211) % 2**64
    return h


def cbor_uint(n: int) -> bytes:
    """Canonical CBOR unsigned integer (major type 0), shortest form."""
    if n < 24:
        return bytes([n])
    for marker, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 2 ** (8 * width):
            return bytes([marker]) + n.to_bytes(width, "big")
    raise ValueError(n)


def cbor_array_header(length: int) -> bytes:
    return bytes([0x80 | length]) if length < 24 else bytes([0x98, length])


def cbor_text(text: str) -> bytes:
    raw = text.encode()
    header = bytes([0x60 | len(raw)]) if len(raw) < 24 else bytes([0x78, len(raw)])
    return header + raw


def expected_chain(hash_seed: str, model: str, ids: list[int], block_size: int) -> list[int]:
    """llm-d's chain of block hashes for ``ids``, from the definition (KV-2)."""
    root = cbor_array_header(3) + cbor_uint(fnv64(hash_seed.encode())) + b"\xf6" + cbor_text(model)
    parent = fnv64(root)
    hashes = []
    for start in range(0, len(ids) - block_size + 1, block_size):
        block = ids[start : start + block_size]
        encoded = cbor_array_header(3) + cbor_uint(parent) + cbor_array_header(len(block))
        encoded += b"".join(cbor_uint(i) for i in block) + b"\xf6"
        parent = fnv64(encoded)
        hashes.append(parent)
    return hashes


class Subscriber:
    """A SUB socket bound on ``endpoint`` (default: a free loopback port), decoding batches
    with plain msgpack."""

    def __init__(self, endpoint: str | None = None) -> None:
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.setsockopt(zmq.LINGER, 0)
        if endpoint is None:
            port = self.socket.bind_to_random_port("tcp://127.0.0.1")
            endpoint = f"tcp://127.0.0.1:{port}"
        else:
            self.socket.bind(endpoint)
        self.endpoint = endpoint
        self.batches: list[tuple[bytes, int, Any]] = []

    def settle(self, seconds: float = 0.5) -> None:
        """Let the publisher's connection arrive: a SUB socket sends its subscription to a new
        peer only while the application is calling into it (as a real, receiving subscriber
        always is)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.socket.poll(20)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Any]:
        """Receive batches until ``count`` events have arrived in all (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.events()) < count and time.monotonic() < deadline:
            if self.socket.poll(50):
                topic, seq, payload = self.socket.recv_multipart()
                self.batches.append((topic, int.from_bytes(seq, "big"), msgpack.unpackb(payload)))
        return self.events()

    def events(self) -> list[Any]:
        return [event for _, _, batch in self.batches for event in batch[1]]

    def close(self) -> None:
        self.socket.close(linger=0)
        self.context.term()


@contextmanager
def subscriber() -> Iterator[Subscriber]:
    sub = Subscriber()
    try:
        yield sub
    finally:
        sub.close()
