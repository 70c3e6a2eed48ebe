"""LoRA slots in the scheduler (LORA-4, LORA-5, SCHED-2)."""

from llmsim.engine.scheduler import Scheduler


def test_second_adapter_waits_for_the_only_lora_slot_LORA_4() -> None:
    changes: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    scheduler = Scheduler(4, 10, max_loras=1, on_lora_change=lambda r, w: changes.append((r, w)))
    a = scheduler.reserve("a")
    b = scheduler.reserve("b")
    assert a.granted and not b.granted
    assert scheduler.running == 1 and scheduler.waiting == 1
    assert changes[-1] == (("a",), ("b",))
    a.give_back()
    assert b.granted
    assert scheduler.loaded["b"].slot == 1 and "a" not in scheduler.loaded
    assert changes[-1] == (("b",), ())
    b.give_back()
    assert changes[-1] == ((), ())


def test_requests_on_a_loaded_adapter_share_its_slot_LORA_4() -> None:
    scheduler = Scheduler(4, 10, max_loras=1)
    first, second = scheduler.reserve("a"), scheduler.reserve("a")
    assert first.granted and second.granted
    assert scheduler.loaded["a"].running == 2


def test_base_model_requests_never_wait_for_lora_slots() -> None:
    scheduler = Scheduler(3, 10, max_loras=1)
    scheduler.reserve("a")
    assert not scheduler.reserve("b").granted
    assert scheduler.reserve(None).granted


def test_idle_adapters_stay_loaded_and_the_least_recently_used_is_evicted_LORA_4() -> None:
    scheduler = Scheduler(4, 10, max_loras=2)
    for name in ("a", "b", "a"):
        scheduler.reserve(name).give_back()
    assert set(scheduler.loaded) == {"a", "b"}
    c = scheduler.reserve("c")
    assert c.granted
    assert set(scheduler.loaded) == {"a", "c"}
    assert scheduler.loaded["c"].slot == 2


def test_freed_slot_prefers_a_waiter_whose_adapter_is_loaded_SCHED_2() -> None:
    scheduler = Scheduler(2, 10, max_loras=1)
    a1 = scheduler.reserve("a")
    a2 = scheduler.reserve("a")
    b = scheduler.reserve("b")
    a3 = scheduler.reserve("a")
    base = scheduler.reserve(None)
    assert not any(t.granted for t in (b, a3, base))
    a1.give_back()
    assert a3.granted and not b.granted and not base.granted
    a2.give_back()
    assert base.granted and not b.granted
    a3.give_back()
    assert b.granted


def test_waiting_request_for_an_adapter_leaving_the_queue_updates_the_waiting_list() -> None:
    changes: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    scheduler = Scheduler(1, 10, max_loras=1, on_lora_change=lambda r, w: changes.append((r, w)))
    scheduler.reserve("a")
    b = scheduler.reserve("b")
    b.give_back()
    assert changes[-1] == (("a",), ())


def test_retired_adapter_frees_its_slot_when_its_requests_end() -> None:
    scheduler = Scheduler(4, 10, max_loras=1)
    a = scheduler.reserve("a")
    scheduler.retire("a")
    assert "a" in scheduler.loaded
    b = scheduler.reserve("b")
    assert not b.granted
    a.give_back()
    assert b.granted and "a" not in scheduler.loaded
