import pytest

from llmsim.calibration.simulate import (
    OverheadCoefficients,
    SimRequest,
    SimStep,
    StepCoefficients,
    simulate,
)

STEP = StepCoefficients(base=0.01, per_prefill_token=0.001, per_decode_token=0.002)


def test_one_request_prefills_in_a_step_then_decodes_a_token_a_step() -> None:
    overhead = OverheadCoefficients(base=0.005, per_input_token=0.0001, per_output_token=0.001)
    (result,) = simulate([SimRequest(1.0, 100, 3)], STEP, overhead, 4096)
    assert result.queued == pytest.approx(1.015)  # 5ms + 100 x 0.1ms
    assert result.picked == result.scheduled == pytest.approx(1.015)  # idle: at once
    assert result.prefill == pytest.approx(0.11)  # 10ms + 100 x 1ms
    assert result.decode == pytest.approx(2 * 0.012)  # two steps of one decode
    assert result.ttft == pytest.approx(0.015 + 0.11)
    assert result.e2e == pytest.approx(0.015 + 0.11 + 0.024 + 3 * 0.001)
    assert result.queue == 0.0


def test_requests_arriving_together_share_their_steps() -> None:
    steps: list[SimStep] = []
    a, b = simulate([SimRequest(0.0, 100, 2), SimRequest(0.0, 200, 2)], STEP, steps=steps)
    assert a.first_token == b.first_token == pytest.approx(0.31)
    assert a.last_token == b.last_token == pytest.approx(0.31 + 0.014)
    assert [(s.prefill_tokens, s.decodes) for s in steps] == [(300, 0), (0, 2)]


def test_prompts_are_chunked_under_the_token_budget() -> None:
    steps: list[SimStep] = []
    a, b = simulate(
        [SimRequest(0.0, 100, 2), SimRequest(0.0, 200, 2)],
        STEP,
        max_num_batched_tokens=250,
        steps=steps,
    )
    assert [(s.prefill_tokens, s.decodes) for s in steps] == [(250, 0), (50, 1), (0, 1)]
    assert a.first_token == pytest.approx(0.26)
    assert a.last_token == b.first_token == pytest.approx(0.26 + 0.062)
    assert b.scheduled == 0.0
    assert b.last_token == pytest.approx(0.322 + 0.012)


def test_max_num_seqs_keeps_requests_waiting() -> None:
    a, b = simulate([SimRequest(0.0, 100, 2), SimRequest(0.0, 200, 2)], STEP, max_num_seqs=1)
    assert a.last_token == pytest.approx(0.122)
    assert b.scheduled == pytest.approx(0.122)
    assert b.queue == pytest.approx(0.122)
    assert b.first_token == pytest.approx(0.122 + 0.21)


def test_a_request_is_taken_in_when_the_step_in_progress_ends() -> None:
    _, b = simulate([SimRequest(0.0, 100, 5), SimRequest(0.05, 200, 2)], STEP)
    assert b.queued == 0.05
    assert b.picked == b.scheduled == pytest.approx(0.11)
    assert b.queue == 0.0
    assert b.ttft == pytest.approx(0.11 + 0.212 - 0.05)


def test_context_tokens_are_those_computed_by_the_end_of_the_step() -> None:
    step = StepCoefficients(0.01, 0.0, 0.0, per_context_token=0.0001)
    steps: list[SimStep] = []
    (result,) = simulate([SimRequest(0.0, 100, 3)], step, steps=steps)
    assert [s.context for s in steps] == [100, 101, 102]
    assert result.last_token == pytest.approx(0.03 + 0.0001 * 303)


def test_a_full_kv_cache_preempts_the_latest_admitted_sequence() -> None:
    a, b = simulate([SimRequest(0.0, 16, 20), SimRequest(0.0, 16, 20)], STEP, kv_cache_tokens=48)
    assert (a.preempted, b.preempted) == (0, 1)
    assert b.last_token > a.last_token
    assert b.first_token < a.last_token  # its first token came before the preemption


def test_a_prompt_larger_than_the_kv_cache_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="cannot fit the KV cache"):
        simulate([SimRequest(0.0, 100, 2)], STEP, kv_cache_tokens=48)
