import asyncio

import pytest

from llmsim.engine.scheduler import QUEUE_FULL_MESSAGE, Scheduler
from llmsim.errors import QueueFull


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_requests_beyond_the_slots_wait_in_fifo_order_SCHED_1() -> None:
    async def scenario() -> list[int]:
        scheduler = Scheduler(max_running=2, max_waiting=10)
        order: list[int] = []

        async def request(index: int) -> None:
            await scheduler.acquire()
            order.append(index)
            await asyncio.sleep(0)
            scheduler.release()

        await scheduler.acquire()
        await scheduler.acquire()
        tasks = [asyncio.create_task(request(i)) for i in range(5)]
        await asyncio.sleep(0)
        assert scheduler.running == 2 and scheduler.waiting == 5
        scheduler.release()
        scheduler.release()
        await asyncio.gather(*tasks)
        assert scheduler.running == 0 and scheduler.waiting == 0
        return order

    assert run(scenario()) == [0, 1, 2, 3, 4]


def test_full_queue_rejects_at_once_SCHED_3() -> None:
    async def scenario() -> None:
        scheduler = Scheduler(max_running=1, max_waiting=1)
        await scheduler.acquire()
        waiter = asyncio.create_task(scheduler.acquire())
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match=QUEUE_FULL_MESSAGE):
            await scheduler.acquire()
        scheduler.release()
        await waiter
        assert scheduler.running == 1

    run(scenario())


def test_zero_queue_length_means_no_waiting_SCHED_3() -> None:
    async def scenario() -> None:
        scheduler = Scheduler(max_running=1, max_waiting=0)
        await scheduler.acquire()
        with pytest.raises(QueueFull):
            await scheduler.acquire()

    run(scenario())


def test_cancelled_waiter_leaves_the_queue_at_once() -> None:
    async def scenario() -> None:
        scheduler = Scheduler(max_running=1, max_waiting=5)
        await scheduler.acquire()
        waiter = asyncio.create_task(scheduler.acquire())
        await asyncio.sleep(0)
        assert scheduler.waiting == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert scheduler.waiting == 0
        scheduler.release()
        assert scheduler.running == 0

    run(scenario())


def test_waiter_cancelled_after_being_handed_a_slot_passes_it_on() -> None:
    async def scenario() -> None:
        scheduler = Scheduler(max_running=1, max_waiting=5)
        await scheduler.acquire()
        first = asyncio.create_task(scheduler.acquire())
        second = asyncio.create_task(scheduler.acquire())
        await asyncio.sleep(0)
        scheduler.release()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await second
        assert scheduler.running == 1 and scheduler.waiting == 0
        scheduler.release()
        assert scheduler.running == 0

    run(scenario())
