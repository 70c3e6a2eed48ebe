import asyncio

import pytest

from llmsim.engine.scheduler import QUEUE_FULL_MESSAGE, Scheduler, Ticket
from llmsim.errors import QueueFull


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_requests_beyond_the_slots_wait_in_fifo_order_SCHED_1() -> None:
    async def scenario() -> list[int]:
        scheduler = Scheduler(max_running=2, max_waiting=10)
        order: list[int] = []

        async def request(ticket: Ticket, index: int) -> None:
            await ticket.wait()
            order.append(index)
            await asyncio.sleep(0)
            ticket.give_back()

        first, second = scheduler.reserve(), scheduler.reserve()
        assert first.granted and second.granted
        tickets = [scheduler.reserve() for _ in range(5)]
        assert not any(t.granted for t in tickets)
        tasks = [asyncio.create_task(request(t, i)) for i, t in enumerate(tickets)]
        await asyncio.sleep(0)
        assert scheduler.running == 2 and scheduler.waiting == 5
        first.give_back()
        second.give_back()
        await asyncio.gather(*tasks)
        assert scheduler.running == 0 and scheduler.waiting == 0
        return order

    assert run(scenario()) == [0, 1, 2, 3, 4]


def test_newcomer_does_not_overtake_the_queue() -> None:
    scheduler = Scheduler(max_running=1, max_waiting=5)
    running = scheduler.reserve()
    waiting = scheduler.reserve()
    running.give_back()
    assert waiting.granted
    newcomer = scheduler.reserve()
    assert not newcomer.granted
    assert scheduler.running == 1 and scheduler.waiting == 1


def test_full_queue_rejects_at_once_SCHED_3() -> None:
    scheduler = Scheduler(max_running=1, max_waiting=1)
    scheduler.reserve()
    scheduler.reserve()
    with pytest.raises(QueueFull, match=QUEUE_FULL_MESSAGE):
        scheduler.reserve()
    assert scheduler.running == 1 and scheduler.waiting == 1


def test_zero_queue_length_means_no_waiting_SCHED_3() -> None:
    scheduler = Scheduler(max_running=1, max_waiting=0)
    scheduler.reserve()
    with pytest.raises(QueueFull):
        scheduler.reserve()


def test_waiting_ticket_given_back_leaves_the_queue_at_once() -> None:
    scheduler = Scheduler(max_running=1, max_waiting=5)
    running = scheduler.reserve()
    waiting = scheduler.reserve()
    waiting.give_back()
    waiting.give_back()
    assert scheduler.waiting == 0
    running.give_back()
    assert scheduler.running == 0


def test_cancelled_waiter_then_given_back_frees_everything() -> None:
    async def scenario() -> None:
        scheduler = Scheduler(max_running=1, max_waiting=5)
        running = scheduler.reserve()
        waiting = scheduler.reserve()
        task = asyncio.create_task(waiting.wait())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        waiting.give_back()
        running.give_back()
        assert scheduler.running == 0 and scheduler.waiting == 0

    run(scenario())


def test_ticket_granted_while_its_owner_is_cancelled_passes_the_slot_on() -> None:
    async def scenario() -> None:
        scheduler = Scheduler(max_running=1, max_waiting=5)
        running = scheduler.reserve()
        first, second = scheduler.reserve(), scheduler.reserve()
        task = asyncio.create_task(first.wait())
        await asyncio.sleep(0)
        running.give_back()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert first.granted
        first.give_back()
        assert second.granted
        second.give_back()
        assert scheduler.running == 0 and scheduler.waiting == 0

    run(scenario())


def test_request_ids_are_uuid5_of_the_url_namespace_HDR_3() -> None:
    import uuid

    from llmsim.engine.rng import uuid5_url

    for name in ("0-8000-0", "1234-8001-99", "é"):
        assert uuid5_url(name) == str(uuid.uuid5(uuid.NAMESPACE_URL, name))
