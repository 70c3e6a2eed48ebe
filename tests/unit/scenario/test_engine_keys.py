"""engine.mode and the batched engine's keys, engine.profile, server.time-scale: validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsim.errors import ScenarioError
from llmsim.scenario.loader import load_scenario_text
from llmsim.scenario.model import Scenario
from llmsim.scenario.profiles import shipped_profile_names

PROFILE = """\
name: mine
model: my-org/my-model
gpu: L40S
tensor-parallel-size: 1
source: measured by hand
step-time: {base: 6ms, per-prefill-token: 20us, per-decode-token: 8us}
"""


def load(text: str) -> Scenario:
    return load_scenario_text("version: 1\n" + text, "s.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load(text)
    return [str(p) for p in caught.value.problems]


def test_engine_mode_defaults_to_per_request_with_no_batched_keys() -> None:
    engine = load("").engine
    assert engine.mode == "per-request"
    assert engine.max_num_batched_tokens is None
    assert engine.profile is None
    assert engine.step_time.given() == {}
    assert engine.request_overhead.given() == {}


def test_batched_keys_take_durations_and_a_percentage() -> None:
    engine = load(
        "engine:\n"
        "  mode: batched\n"
        "  max-num-batched-tokens: 512\n"
        "  step-time: {base: 4ms, per-prefill-token: 30us, per-decode-token: 150us,"
        " per-context-token: 10ns, jitter: 5%}\n"
        "  request-overhead: {base: 1ms, per-input-token: 2us, per-output-token: 0.5ms}\n"
    ).engine
    assert engine.max_num_batched_tokens == 512
    assert engine.step_time.given() == pytest.approx(
        {
            "base": 0.004,
            "per_prefill_token": 30e-6,
            "per_decode_token": 150e-6,
            "per_context_token": 10e-9,
            "jitter": 5.0,
        }
    )
    assert engine.request_overhead.given() == pytest.approx(
        {"base": 0.001, "per_input_token": 2e-6, "per_output_token": 0.0005}
    )


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("step-time: {base: 5ms}", "engine.step-time"),
        ("request-overhead: {base: 1ms}", "engine.request-overhead"),
        ("profile: llama-3.1-8b-h100-tp1", "engine.profile"),
        ("max-num-batched-tokens: 4096", "engine.max-num-batched-tokens"),
    ],
)
def test_batched_keys_with_the_per_request_mode_are_errors(line: str, key: str) -> None:
    [problem] = problems(f"engine:\n  {line}\n")
    assert f": {key}: applies to engine.mode: batched" in problem
    assert problem.startswith("s.yaml:3:")


def test_an_empty_step_time_section_is_not_a_batched_key() -> None:
    assert load("engine: {step-time: {}, request-overhead: {}}\n").engine.mode == "per-request"


def test_unknown_mode_is_an_error() -> None:
    [problem] = problems("engine: {mode: fast}\n")
    assert "engine.mode: " in problem
    assert "'per-request' or 'batched'" in problem


def test_unknown_step_time_key_gets_a_did_you_mean_hint() -> None:
    [problem] = problems("engine:\n  mode: batched\n  step-time: {per-prefil-token: 1us}\n")
    assert problem.endswith(
        "engine.step-time.per-prefil-token: unknown key; did you mean 'per-prefill-token'?"
    )


def test_misplaced_batched_key_hint_names_the_engine_section() -> None:
    [problem] = problems("latency: {max-num-batched-tokens: 10}\n")
    assert "did you mean 'max-num-batched-tokens' (a key of 'engine')?" in problem


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max-num-batched-tokens: 0", "greater than or equal to 1"),
        ("step-time: {jitter: 31}", "must be at most 30%"),
        ("step-time: {jitter: 200%}", "less than or equal to 100"),
        ("step-time: {base: -1ms}", "a duration must not be negative"),
        ("request-overhead: {per-input-token: soon}", "invalid duration 'soon'"),
    ],
)
def test_invalid_batched_values_are_errors(line: str, message: str) -> None:
    [problem] = problems(f"engine:\n  mode: batched\n  {line}\n")
    assert message in problem


def test_profile_by_shipped_name() -> None:
    engine = load("engine: {mode: batched, profile: llama-3.1-8b-h100-tp1}\n").engine
    assert engine.profile == "llama-3.1-8b-h100-tp1"


def test_unknown_profile_name_lists_the_available_names() -> None:
    [problem] = problems("engine: {mode: batched, profile: llama-9b}\n")
    assert "engine.profile: unknown profile 'llama-9b'; available: " in problem
    for name in shipped_profile_names():
        assert name in problem


def test_profile_by_path_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text(PROFILE)
    monkeypatch.chdir(tmp_path)
    engine = load("engine: {mode: batched, profile: profiles/mine.yaml}\n").engine
    assert engine.profile == "profiles/mine.yaml"


def test_missing_profile_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    [problem] = problems(f"engine: {{mode: batched, profile: '{path}'}}\n")
    assert f"engine.profile: profile file '{path}' does not exist" in problem


def test_unparsable_profile_file_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    [problem] = problems(f"engine: {{mode: batched, profile: '{path}'}}\n")
    assert f"profile file '{path}' is not valid YAML" in problem


def test_invalid_profile_file_names_the_file_and_its_problems(tmp_path: Path) -> None:
    path = tmp_path / "partial.yaml"
    path.write_text(PROFILE.replace("source: measured by hand\n", "sauce: x\n"))
    [problem] = problems(f"engine: {{mode: batched, profile: '{path}'}}\n")
    assert f"profile file '{path}' is not a valid profile" in problem
    assert "source: is required" in problem
    assert "sauce: unknown key" in problem


def test_time_scale_defaults_to_one_and_takes_a_positive_number() -> None:
    assert load("").server.time_scale == 1.0
    assert load("server: {time-scale: 0.1}\n").server.time_scale == 0.1
    assert load("server: {time-scale: 20}\n").server.time_scale == 20.0


@pytest.mark.parametrize("value", ["0", "-1", "1001", ".inf", "fast"])
def test_time_scale_out_of_range_is_an_error(value: str) -> None:
    [problem] = problems(f"server: {{time-scale: {value}}}\n")
    assert "server.time-scale: " in problem


def test_batched_keys_can_be_set_from_overrides() -> None:
    scenario = load_scenario_text(
        "version: 1\n",
        "s.yaml",
        ["engine.mode=batched", "engine.step-time.base=7ms", "server.time-scale=0.5"],
    )
    assert scenario.engine.step_time.base == pytest.approx(0.007)
    assert scenario.server.time_scale == 0.5


def test_per_request_timing_keys_are_errors_in_batched_mode() -> None:
    found = problems(
        "engine: {mode: batched}\nlatency: {time-to-first-token: 100ms}\n"
        "rules:\n  - when: {prompt-matches: x}\n    latency: {inter-token-latency: 5ms}\n"
        "phases:\n  - {name: p, start: 1s, latency: {time-factor-under-load: 2}}\n"
    )
    assert len(found) == 1
    for place in (
        "latency.time-to-first-token",
        "rules[0].latency.inter-token-latency",
        "phases[0].latency.time-factor-under-load",
    ):
        assert place in found[0]
    assert "engine.mode: batched" in found[0]


def test_an_omni_image_time_still_applies_in_batched_mode() -> None:
    scenario = load("engine: {mode: batched}\nlatency: {time-to-generate-image: 50ms}\n")
    assert scenario.latency.time_to_generate_image == pytest.approx(0.05)
