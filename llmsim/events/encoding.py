"""KV events as bytes on the wire: vLLM's event structures, batch payloads and sequence frames.

Events are built as plain lists (legacy array format) or dicts (``use-vllm-map-event-format``)
and a batch is packed with msgpack as ``[timestamp, [events...], data_parallel_rank]`` (ZMQ-1,
ZMQ-3, ZMQ-4). Pure functions only: no sockets, no clocks, no state.
"""

from __future__ import annotations

import struct
from typing import Any, cast

import msgpack  # type: ignore[import-untyped]

MEDIUM = "GPU"
END_OF_REPLAY = 0xFFFFFFFFFFFFFFFF
"""The sequence number of the replay sentinel (ZMQ-5)."""

Event = list[Any] | dict[str, Any]
"""One encoded event, ready to be packed into a batch."""

_SEQUENCE = struct.Struct(">Q")


def encode_sequence(seq: int) -> bytes:
    """A sequence number as the 8-byte big-endian frame."""
    return _SEQUENCE.pack(seq)


def decode_sequence(frame: bytes) -> int:
    """The big-endian unsigned number in the first 8 bytes of ``frame`` (which must have them)."""
    return cast(int, _SEQUENCE.unpack_from(frame)[0])


def block_stored(
    block_hashes: list[int],
    parent_block_hash: int | None,
    token_ids: list[int],
    block_size: int,
    lora_id: int | None,
    lora_name: str | None,
    *,
    map_format: bool,
) -> Event:
    """A BlockStored event; the lists are copied, so the caller may reuse its own."""
    if map_format:
        event: dict[str, Any] = {
            "type": "BlockStored",
            "block_hashes": list(block_hashes),
            "parent_block_hash": parent_block_hash,
            "token_ids": list(token_ids),
            "block_size": block_size,
        }
        if lora_id is not None:
            event["lora_id"] = lora_id
        event["medium"] = MEDIUM
        if lora_name is not None:
            event["lora_name"] = lora_name
        return event
    # The legacy array has no nil parent: 0 means "no parent"; the last slot is extra_keys.
    return [
        "BlockStored",
        list(block_hashes),
        0 if parent_block_hash is None else parent_block_hash,
        list(token_ids),
        block_size,
        lora_id,
        MEDIUM,
        lora_name,
        None,
    ]


def block_removed(block_hashes: list[int], *, map_format: bool) -> Event:
    """A BlockRemoved event."""
    if map_format:
        return {"type": "BlockRemoved", "block_hashes": list(block_hashes), "medium": MEDIUM}
    return ["BlockRemoved", list(block_hashes), MEDIUM]


def all_blocks_cleared(*, map_format: bool) -> Event:
    """An AllBlocksCleared event."""
    if map_format:
        return {"type": "AllBlocksCleared"}
    return ["AllBlocksCleared"]


def pack_batch(timestamp: float, events: list[Event], data_parallel_rank: int) -> bytes:
    """The msgpack payload of one batch; the timestamp is always packed as float64."""
    payload = msgpack.packb([float(timestamp), events, data_parallel_rank], use_bin_type=True)
    return cast(bytes, payload)
