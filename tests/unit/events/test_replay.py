from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgpack  # type: ignore[import-untyped]
import zmq
import zmq.asyncio

from llmsim.events import KVEventPublisher
from tests.unit.events.support import END_OF_REPLAY, ReplayClient, Subscriber, free_endpoint, run

TOPIC = "kv@10.0.0.1:8000@m"
SENTINEL = [b"", END_OF_REPLAY, b""]


def replaying_publisher(
    replay_endpoint: str, queue_size: int = 1024, endpoint: str = ""
) -> KVEventPublisher:
    return KVEventPublisher(
        endpoint or free_endpoint(),  # nobody listens: replay works without subscribers
        TOPIC,
        batch_size=1,
        map_format=False,
        data_parallel_rank=0,
        replay_endpoint=replay_endpoint,
        replay_queue_size=queue_size,
        flush_interval=10.0,
    )


@asynccontextmanager
async def replay_session(
    queue_size: int = 1024, context: zmq.asyncio.Context | None = None, endpoint: str = ""
) -> AsyncIterator[tuple[KVEventPublisher, ReplayClient]]:
    """A started replaying publisher and a client asking it; both closed afterwards."""
    replay_endpoint = free_endpoint()
    publisher = replaying_publisher(replay_endpoint, queue_size, endpoint)
    own_context = context is None
    context = context or zmq.asyncio.Context()
    client = ReplayClient(context, replay_endpoint)
    try:
        await publisher.start()
        yield publisher, client
    finally:
        await publisher.close()
        client.close()
        if own_context:
            context.destroy(linger=0)


def seq_of(reply: list[bytes]) -> int:
    return int.from_bytes(reply[1], "big")


def removed_hash(reply: list[bytes]) -> int:
    hash_: int = msgpack.unpackb(reply[2])[1][0][1][0]
    return hash_


def test_replay_sends_every_kept_batch_from_the_asked_sequence_then_the_sentinel_ZMQ_5() -> None:
    async def scenario() -> None:
        async with replay_session() as (publisher, client):
            for n in range(1, 6):
                publisher.blocks_removed([100 + n])
            await client.ask(3)
            replies = await client.replies()
            assert replies[-1] == SENTINEL
            assert [r[0] for r in replies[:-1]] == [TOPIC.encode()] * 3
            assert [seq_of(r) for r in replies[:-1]] == [3, 4, 5]
            assert [removed_hash(r) for r in replies[:-1]] == [103, 104, 105]
            await client.ask(0)  # numbering starts at 1
            assert [seq_of(r) for r in (await client.replies())[:-1]] == [1, 2, 3, 4, 5]
            await client.ask(6)
            assert await client.replies() == [SENTINEL]

    run(scenario())


def test_only_the_last_queue_size_batches_are_kept_ZMQ_5() -> None:
    async def scenario() -> None:
        async with replay_session(queue_size=3) as (publisher, client):
            for n in range(1, 7):
                publisher.blocks_removed([n])
            await client.ask(1)  # history lost before 4 is not signalled
            replies = await client.replies()
            assert [seq_of(r) for r in replies[:-1]] == [4, 5, 6]
            assert [removed_hash(r) for r in replies[:-1]] == [4, 5, 6]
            assert replies[-1] == SENTINEL

    run(scenario())


def test_malformed_requests_are_ignored_ZMQ_5() -> None:
    async def scenario() -> None:
        async with replay_session() as (publisher, client):
            for n in range(1, 4):
                publisher.blocks_removed([n])
            await client.send(b"", b"\x00" * 7)  # too short
            await client.send(b"", (1).to_bytes(8, "big"), b"extra")  # too many frames
            await client.send((1).to_bytes(8, "big"))  # no delimiter
            await client.send(b"x", (1).to_bytes(8, "big"))  # not an empty delimiter
            await client.ask(2)
            replies = await client.replies()  # the first answer is to the valid request
            assert [seq_of(r) for r in replies[:-1]] == [2, 3]
            assert replies[-1] == SENTINEL

    run(scenario())


def test_replayed_batches_are_the_published_bytes() -> None:
    async def scenario() -> None:
        context = zmq.asyncio.Context()
        subscriber = Subscriber(context, TOPIC)
        try:
            async with replay_session(context=context, endpoint=subscriber.endpoint) as (
                publisher,
                client,
            ):
                await subscriber.join(publisher)
                publisher.block_stored([1, 2], None, [1, 2, 3, 4], 2, 1, "a")
                published = await subscriber.receive()
                await client.ask(published.seq)
                replies = await client.replies()
                expected = [published.topic, published.seq_frame, published.payload]
                assert replies == [expected, SENTINEL]
        finally:
            subscriber.close()
            context.destroy(linger=0)

    run(scenario())
