"""The shipped engine profiles, and profile files of one's own."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from llmsim.scenario.profiles import (
    ProfileError,
    load_profile,
    shipped_profile,
    shipped_profile_names,
)

US = 1e-6


def test_at_least_four_profiles_are_shipped_with_the_package() -> None:
    assert len(shipped_profile_names()) >= 4
    folder = resources.files("llmsim") / "profiles"
    assert {entry.name for entry in folder.iterdir() if entry.name.endswith(".yaml")} == {
        f"{name}.yaml" for name in shipped_profile_names()
    }


@pytest.mark.parametrize("name", shipped_profile_names())
def test_every_shipped_profile_loads_names_itself_and_says_where_its_numbers_come_from(
    name: str,
) -> None:
    profile = shipped_profile(name)
    assert profile.name == name
    assert profile.source.strip()
    assert "inference-sim/inference-sim" in profile.source
    assert profile.step_time.base > 0
    assert profile.step_time.per_prefill_token > 0
    assert profile.step_time.per_decode_token > 0
    assert f"tp{profile.tensor_parallel_size}" in name


def test_llama_3_1_8b_on_h100_tp1_carries_blis_coefficients_in_seconds() -> None:
    profile = shipped_profile("llama-3.1-8b-h100-tp1")
    assert (profile.model, profile.gpu, profile.tensor_parallel_size) == (
        "meta-llama/Llama-3.1-8B-Instruct",
        "H100",
        1,
    )
    assert profile.vllm_version == "v0.8.4"
    # BLIS defaults.yaml, microseconds: beta = step time, alpha = request overhead.
    step = profile.step_time
    assert step.base == pytest.approx(5752.705191348184 * US)
    assert step.per_prefill_token == pytest.approx(17.25086436834028 * US)
    assert step.per_decode_token == pytest.approx(5.999143920128404 * US)
    assert (step.per_context_token, step.jitter) == (0.0, 0.0)
    overhead = profile.request_overhead
    assert overhead.base == pytest.approx(232.46191091038054 * US)
    assert overhead.per_input_token == pytest.approx(1.752360364195244 * US)
    assert overhead.per_output_token == pytest.approx(3357.4400353290152 * US)


def test_a_profile_file_with_engine_settings_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.yml"
    path.write_text(
        "name: mine\nmodel: m\ngpu: L4\ntensor-parallel-size: 2\nsource: by hand\n"
        "step-time: {base: 1ms, per-prefill-token: 1us, per-decode-token: 2us, jitter: 3}\n"
        "engine: {max-num-batched-tokens: 8192, max-num-seqs: 256}\n"
    )
    loaded = load_profile(str(path))
    assert loaded.origin == str(path)
    assert loaded.profile.engine.max_num_batched_tokens == 8192
    assert loaded.profile.engine.max_num_seqs == 256
    assert loaded.profile.step_time.jitter == 3.0
    assert loaded.profile.request_overhead.base == 0.0
    assert loaded.profile.summary() == "m on L4, TP 2"


def test_a_profile_needs_its_step_time_and_a_source(tmp_path: Path) -> None:
    path = tmp_path / "thin.yaml"
    path.write_text("name: t\nmodel: m\ngpu: g\ntensor-parallel-size: 1\nsource: ''\n")
    with pytest.raises(ProfileError) as caught:
        load_profile(str(path))
    assert "source: String should have at least 1 character" in str(caught.value)
    assert "step-time: is required" in str(caught.value)


def test_a_profile_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ProfileError, match="must be a mapping"):
        load_profile(str(path))


def test_a_name_that_is_not_shipped_and_not_a_path_is_unknown() -> None:
    with pytest.raises(ProfileError) as caught:
        load_profile("h100")
    assert str(caught.value).startswith("unknown profile 'h100'; available: llama-3.1-8b")
