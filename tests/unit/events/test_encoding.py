import msgpack  # type: ignore[import-untyped]

from llmsim.events import encoding
from llmsim.events.replay import ReplayBuffer, parse_request

U64_MAX = 2**64 - 1


def test_legacy_block_stored_is_a_nine_item_array_with_zero_parent_ZMQ_3() -> None:
    event = encoding.block_stored([1, U64_MAX], None, [5, 6, 7, 8], 2, None, None, map_format=False)
    assert event == ["BlockStored", [1, U64_MAX], 0, [5, 6, 7, 8], 2, None, "GPU", None, None]


def test_legacy_block_stored_carries_parent_and_lora_ZMQ_3() -> None:
    event = encoding.block_stored([9], 42, [1, 2], 2, 1, "adapter", map_format=False)
    assert event == ["BlockStored", [9], 42, [1, 2], 2, 1, "GPU", "adapter", None]


def test_map_block_stored_omits_absent_lora_keys_and_keeps_nil_parent_ZMQ_4() -> None:
    event = encoding.block_stored([1], None, [3, 4], 2, None, None, map_format=True)
    assert event == {
        "type": "BlockStored",
        "block_hashes": [1],
        "parent_block_hash": None,
        "token_ids": [3, 4],
        "block_size": 2,
        "medium": "GPU",
    }
    with_lora = encoding.block_stored([1], 7, [3, 4], 2, 2, "a", map_format=True)
    assert isinstance(with_lora, dict)
    assert list(with_lora) == [
        "type",
        "block_hashes",
        "parent_block_hash",
        "token_ids",
        "block_size",
        "lora_id",
        "medium",
        "lora_name",
    ]
    assert with_lora["parent_block_hash"] == 7
    assert with_lora["lora_id"] == 2 and with_lora["lora_name"] == "a"


def test_removed_and_cleared_in_both_formats() -> None:
    assert encoding.block_removed([3], map_format=False) == ["BlockRemoved", [3], "GPU"]
    assert encoding.block_removed([3], map_format=True) == {
        "type": "BlockRemoved",
        "block_hashes": [3],
        "medium": "GPU",
    }
    assert encoding.all_blocks_cleared(map_format=False) == ["AllBlocksCleared"]
    assert encoding.all_blocks_cleared(map_format=True) == {"type": "AllBlocksCleared"}


def test_events_do_not_share_the_callers_lists() -> None:
    hashes = [1, 2]
    event = encoding.block_removed(hashes, map_format=False)
    hashes.append(3)
    assert event == ["BlockRemoved", [1, 2], "GPU"]


def test_batch_is_timestamp_float64_events_and_rank() -> None:
    payload = encoding.pack_batch(7, [["AllBlocksCleared"]], 3)
    # fixarray(3), then float 64 (0xcb) even for an integral timestamp
    assert payload[:2] == b"\x93\xcb"
    assert msgpack.unpackb(payload) == [7.0, [["AllBlocksCleared"]], 3]


def test_u64_hashes_survive_the_round_trip() -> None:
    event = encoding.block_removed([U64_MAX, 2**63], map_format=False)
    assert msgpack.unpackb(encoding.pack_batch(1.5, [event], 0))[1][0][1] == [U64_MAX, 2**63]


def test_sequence_frames_are_8_byte_big_endian() -> None:
    assert encoding.encode_sequence(1) == b"\x00" * 7 + b"\x01"
    assert encoding.encode_sequence(encoding.END_OF_REPLAY) == b"\xff" * 8
    assert encoding.decode_sequence(b"\x00" * 7 + b"\x02" + b"extra") == 2


def test_replay_buffer_keeps_the_last_batches_and_answers_from_a_sequence() -> None:
    buffer = ReplayBuffer(3)
    for seq in range(1, 6):
        buffer.append(seq, bytes([seq]))
    assert len(buffer) == 3
    assert [seq for seq, _ in buffer.since(0)] == [3, 4, 5]
    assert buffer.since(4) == [(4, b"\x04"), (5, b"\x05")]
    assert buffer.since(6) == []
    assert ReplayBuffer(1).since(0) == []


def test_replay_requests_need_three_frames_an_empty_delimiter_and_8_bytes_ZMQ_5() -> None:
    seq = (5).to_bytes(8, "big")
    assert parse_request([b"id", b"", seq]) == (b"id", 5)
    assert parse_request([b"id", b"", seq + b"\x01"]) == (b"id", 5)
    assert parse_request([b"id", b"", seq[:7]]) is None
    assert parse_request([b"id", b"x", seq]) is None
    assert parse_request([b"id", seq]) is None
    assert parse_request([b"id", b"", seq, b""]) is None
