"""Which phases are active, on an injected clock (no sleeping)."""

from llmsim.plan.phases import PhaseClock, PhaseWindow


def clock_at(now: list[float]) -> PhaseClock:
    return PhaseClock(
        (
            PhaseWindow("a", start=0.0, after_requests=None, duration=None),
            PhaseWindow("b", start=2.0, after_requests=None, duration=1.0),
            PhaseWindow("c", start=4.0, after_requests=None, duration=None),
        ),
        clock=lambda: now[0],
    )


def test_time_windows_from_ready() -> None:
    now = [100.0]
    phases = clock_at(now)
    phases.mark_ready()
    seen = {}
    for t in (0.0, 1.9, 2.0, 2.5, 3.0, 3.9, 4.0, 60.0):
        now[0] = 100.0 + t
        seen[t] = phases.active()
    # a lasts until the next phase (b) begins; b lasts 1 s; nothing is active from 3 s to 4 s.
    assert seen == {
        0.0: (0,),
        1.9: (0,),
        2.0: (1,),
        2.5: (1,),
        3.0: (),
        3.9: (),
        4.0: (2,),
        60.0: (2,),
    }
    assert phases.active_name() == "c"


def test_after_requests_begins_with_the_next_request() -> None:
    now = [0.0]
    phases = PhaseClock(
        (
            PhaseWindow("quiet", start=0.0, after_requests=None, duration=None),
            PhaseWindow("busy", start=None, after_requests=3, duration=5.0),
        ),
        clock=lambda: now[0],
    )
    for _ in range(3):
        phases.count_request()
        assert phases.active() == (0,)
    now[0] = 10.0
    phases.count_request()
    assert phases.active() == (1,)
    now[0] = 14.9
    assert phases.active() == (1,)
    now[0] = 15.0
    assert phases.active() == ()


def test_overlapping_phases_are_all_active_in_order() -> None:
    now = [0.0]
    phases = PhaseClock(
        (
            PhaseWindow("long", start=0.0, after_requests=None, duration=100.0),
            PhaseWindow("spike", start=1.0, after_requests=None, duration=1.0),
        ),
        clock=lambda: now[0],
    )
    now[0] = 1.5
    assert phases.active() == (0, 1)
    assert phases.active_name() == "spike"
