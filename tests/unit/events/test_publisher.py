import asyncio
import time

import msgpack  # type: ignore[import-untyped]
import pytest
import zmq
import zmq.asyncio

from llmsim.events import KVEventPublisher
from tests.unit.events.support import Subscriber, free_endpoint, run

TOPIC = "kv@10.0.0.1:8000@Qwen/Qwen2.5-1.5B-Instruct"
U64_MAX = 2**64 - 1


def publisher_for(endpoint: str, **options: object) -> KVEventPublisher:
    settings: dict[str, object] = {
        "batch_size": 1,
        "map_format": False,
        "data_parallel_rank": 0,
        "flush_interval": 10.0,
    }
    settings.update(options)
    return KVEventPublisher(endpoint, TOPIC, **settings)  # type: ignore[arg-type]


def publish_one_of_each(publisher: KVEventPublisher) -> None:
    publisher.block_stored([11, U64_MAX], None, [1, 2, 3, 4], 2, None, None)
    publisher.block_stored([12], 11, [5, 6], 2, 1, "adapter")
    publisher.blocks_removed([11])
    publisher.all_blocks_cleared()


async def published_batches(map_format: bool) -> tuple[int, list[list[bytes]], list[object]]:
    """Publish one event of each kind, one per batch; return the number of probe batches, the
    received frames and the plainly decoded payloads."""
    context = zmq.asyncio.Context()
    subscriber = Subscriber(context, TOPIC)
    publisher = publisher_for(
        subscriber.endpoint, map_format=map_format, data_parallel_rank=3, clock=lambda: 1234.5
    )
    try:
        await publisher.start()
        await subscriber.join(publisher)
        publish_one_of_each(publisher)
        batches = [await subscriber.receive() for _ in range(4)]
    finally:
        await publisher.close()
        subscriber.close()
        context.destroy(linger=0)
    frames = [[b.topic, b.seq_frame, b.payload] for b in batches]
    return subscriber.skip_through, frames, [msgpack.unpackb(b.payload) for b in batches]


def test_batches_are_topic_sequence_and_legacy_arrays_ZMQ_1_ZMQ_3() -> None:
    probes, frames, payloads = run(published_batches(map_format=False))
    assert [f[0] for f in frames] == [TOPIC.encode()] * 4
    # Sequence numbers count every batch from 1, the probes included.
    assert [f[1] for f in frames] == [(probes + i).to_bytes(8, "big") for i in range(1, 5)]
    assert payloads == [
        [1234.5, [["BlockStored", [11, U64_MAX], 0, [1, 2, 3, 4], 2, None, "GPU", None, None]], 3],
        [1234.5, [["BlockStored", [12], 11, [5, 6], 2, 1, "GPU", "adapter", None]], 3],
        [1234.5, [["BlockRemoved", [11], "GPU"]], 3],
        [1234.5, [["AllBlocksCleared"]], 3],
    ]
    assert all(f[2][:2] == b"\x93\xcb" for f in frames)  # [float64 timestamp, ...]


def test_map_format_events_ZMQ_4() -> None:
    probes, frames, payloads = run(published_batches(map_format=True))
    assert [f[1] for f in frames] == [(probes + i).to_bytes(8, "big") for i in range(1, 5)]
    assert payloads == [
        [
            1234.5,
            [
                {
                    "type": "BlockStored",
                    "block_hashes": [11, U64_MAX],
                    "parent_block_hash": None,
                    "token_ids": [1, 2, 3, 4],
                    "block_size": 2,
                    "medium": "GPU",
                }
            ],
            3,
        ],
        [
            1234.5,
            [
                {
                    "type": "BlockStored",
                    "block_hashes": [12],
                    "parent_block_hash": 11,
                    "token_ids": [5, 6],
                    "block_size": 2,
                    "lora_id": 1,
                    "medium": "GPU",
                    "lora_name": "adapter",
                }
            ],
            3,
        ],
        [1234.5, [{"type": "BlockRemoved", "block_hashes": [11], "medium": "GPU"}], 3],
        [1234.5, [{"type": "AllBlocksCleared"}], 3],
    ]


def test_batch_size_events_go_out_as_one_batch_at_once_ZMQ_2() -> None:
    async def scenario() -> None:
        context = zmq.asyncio.Context()
        subscriber = Subscriber(context, TOPIC)
        publisher = publisher_for(subscriber.endpoint, batch_size=3)
        try:
            await publisher.start()
            await subscriber.join(publisher)
            publisher.blocks_removed([1])
            publisher.blocks_removed([2])
            assert await subscriber.nothing_within(0.05)
            publisher.blocks_removed([3])
            full = await subscriber.receive()
            assert full.events == [["BlockRemoved", [n], "GPU"] for n in (1, 2, 3)]
            publisher.flush()  # nothing pending: no empty batch
            publisher.blocks_removed([4])
            publisher.flush()
            partial = await subscriber.receive()
            assert partial.events == [["BlockRemoved", [4], "GPU"]]
            assert partial.seq == full.seq + 1
        finally:
            await publisher.close()
            subscriber.close()
            context.destroy(linger=0)

    run(scenario())


def test_fewer_events_than_the_batch_size_go_out_on_the_timer_ZMQ_2() -> None:
    async def scenario() -> None:
        context = zmq.asyncio.Context()
        subscriber = Subscriber(context, TOPIC)
        publisher = publisher_for(subscriber.endpoint, batch_size=100, flush_interval=0.1)
        try:
            await publisher.start()
            last_flush = await subscriber.join(publisher)
            publisher.blocks_removed([1])
            publisher.blocks_removed([2])
            batch = await subscriber.receive()
            assert time.monotonic() - last_flush >= 0.09
            assert batch.events == [["BlockRemoved", [1], "GPU"], ["BlockRemoved", [2], "GPU"]]
        finally:
            await publisher.close()
            subscriber.close()
            context.destroy(linger=0)

    run(scenario())


def test_a_size_flush_restarts_the_timer_ZMQ_2() -> None:
    async def scenario() -> None:
        context = zmq.asyncio.Context()
        subscriber = Subscriber(context, TOPIC)
        publisher = publisher_for(subscriber.endpoint, batch_size=2, flush_interval=0.2)
        try:
            await publisher.start()
            await subscriber.join(publisher)
            publisher.blocks_removed([1])
            await subscriber.receive()  # a timed flush: the timer's phase is now known
            await asyncio.sleep(0.12)  # an unrestarted timer would fire 0.08 s from here
            size_flushed_at = time.monotonic()
            publisher.blocks_removed([2])
            publisher.blocks_removed([3])
            assert len((await subscriber.receive()).events) == 2
            publisher.blocks_removed([4])
            timed = await subscriber.receive()
            assert timed.events == [["BlockRemoved", [4], "GPU"]]
            assert time.monotonic() - size_flushed_at >= 0.19
        finally:
            await publisher.close()
            subscriber.close()
            context.destroy(linger=0)

    run(scenario())


def test_publishing_without_any_subscriber_never_blocks() -> None:
    async def scenario() -> None:
        publisher = publisher_for(free_endpoint(), batch_size=1)
        await publisher.start()
        started = time.monotonic()
        for n in range(10_000):
            publisher.block_stored([n], None, [1, 2], 2, None, None)
        elapsed = time.monotonic() - started
        await publisher.close()
        assert elapsed < 2.0, elapsed

    run(scenario())


def test_a_subscriber_that_appears_later_still_gets_batches_ZMQ_1() -> None:
    async def scenario() -> None:
        endpoint = free_endpoint()
        publisher = publisher_for(endpoint)
        await publisher.start()
        publisher.all_blocks_cleared()  # nobody is there: gone, at no cost
        context = zmq.asyncio.Context()
        subscriber = Subscriber(context, TOPIC, endpoint)
        subscriber.skip_through = 1  # the batch sent before it was there had number 1
        try:
            await subscriber.join(publisher)  # ZMQ reconnects on its own
            publisher.blocks_removed([5])
            batch = await subscriber.receive()
            assert batch.events == [["BlockRemoved", [5], "GPU"]]
            assert batch.seq == subscriber.skip_through + 1
        finally:
            await publisher.close()
            subscriber.close()
            context.destroy(linger=0)

    run(scenario())


def test_close_is_idempotent_and_later_events_are_ignored() -> None:
    async def scenario() -> None:
        publisher = publisher_for(free_endpoint(), batch_size=4)
        await publisher.start()
        publisher.blocks_removed([1])
        await publisher.close()
        await publisher.close()
        publisher.blocks_removed([2])
        publisher.flush()

    run(scenario())


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="batch size"):
        publisher_for(free_endpoint(), batch_size=0)
    with pytest.raises(ValueError, match="flush interval"):
        publisher_for(free_endpoint(), flush_interval=0)
    with pytest.raises(ValueError, match="replay queue size"):
        publisher_for(free_endpoint(), replay_endpoint=free_endpoint(), replay_queue_size=0)
