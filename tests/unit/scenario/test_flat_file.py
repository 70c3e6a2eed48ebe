"""Upstream flat config files read as scenarios: detection, mapping, notes, located problems."""

from __future__ import annotations

import pytest

from llmsim.errors import ScenarioError
from llmsim.plan.compile import compile_scenario
from llmsim.scenario.flat import flat_paths, flatten, set_flat
from llmsim.scenario.flat_file import is_flat
from llmsim.scenario.loader import LoadedScenario, load_scenario_text, read_scenario_text
from llmsim.scenario.overlays import section_data
from tests.upstream_configs import FLAT_CONFIGS, INVALID_CONFIG


def read(text: str, filename: str = "c.yaml") -> LoadedScenario:
    return read_scenario_text(text, filename)


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        read(text)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("name", sorted(FLAT_CONFIGS))
def test_every_example_config_is_read_as_a_flat_file(name: str) -> None:
    loaded = read(FLAT_CONFIGS[name], f"{name}.yaml")
    assert loaded.flat
    assert loaded.scenario.name == name
    compile_scenario(loaded.scenario, environ={})


def test_the_invalid_example_is_refused_at_its_key() -> None:
    assert problems(INVALID_CONFIG) == [
        "c.yaml:9:1: zmq-max-connect-attempts: must not be negative, got -5"
    ]


def test_keys_map_onto_sections() -> None:
    scenario = read(FLAT_CONFIGS["loras-and-names"]).scenario
    assert scenario.server.port == 8102
    assert scenario.model.name == "Qwen/Qwen2-0.5B"
    assert scenario.model.served_names == ["alpha", "beta"]
    assert (scenario.lora.max_loras, scenario.lora.max_cpu_loras) == (3, 6)
    assert [m.name for m in scenario.lora.lora_modules] == ["sql-adapter", "chat-adapter"]
    assert scenario.responses.mode == "echo"
    assert scenario.latency.time_to_first_token == pytest.approx(0.3)
    assert scenario.seed == 7


def test_integer_durations_are_milliseconds() -> None:
    scenario = read(FLAT_CONFIGS["int-latencies"]).scenario
    assert scenario.latency.time_to_first_token == pytest.approx(1.5)
    assert scenario.latency.inter_token_latency == pytest.approx(0.02)


def test_snake_case_key_is_ignored_as_upstream_with_a_warning() -> None:
    loaded = read(FLAT_CONFIGS["int-latencies"])
    assert loaded.scenario.latency.kv_cache_transfer_latency == 0
    [note] = loaded.notes
    assert str(note) == (
        "c.yaml:7:1: kv_cache_transfer_latency: warning: not an upstream key (upstream ignores"
        " it); did you mean 'kv-cache-transfer-latency'? ignored"
    )


def test_retired_keys_and_nulls() -> None:
    loaded = read(FLAT_CONFIGS["dumped-config"])
    assert [note.key for note in loaded.notes] == [
        "tokenizers-cache-dir",
        "zmq-max-connect-attempts",
    ]
    assert all(note.message.startswith("warning: ") for note in loaded.notes)
    scenario = loaded.scenario
    assert scenario.failures.failure_types == []
    assert scenario.lora.lora_modules == []
    assert scenario.responses.tools.min_tool_call_integer_param == 5
    assert scenario.kv_cache.hash_seed == "seed-text"
    assert scenario.metrics.fake_metrics is not None


def test_fake_metrics_with_json_loras_and_functions() -> None:
    fake = read(FLAT_CONFIGS["engine-vllm-fake-metrics"]).scenario.metrics.fake_metrics
    assert fake is not None
    assert str(fake.waiting_requests) == "squarewave:1:6:2s"
    assert fake.loras is not None
    assert fake.loras[0].running == "summarizer"
    assert fake.request_max_generation_tokens == [0, 5, 5]


def test_sglang_names_map_onto_vllm_keys_with_a_warning() -> None:
    loaded = read(FLAT_CONFIGS["engine-sglang"])
    scenario = loaded.scenario
    assert scenario.model.max_model_len == 4096
    assert scenario.engine.max_num_seqs == 9
    assert scenario.engine.max_waiting_queue_length == 100
    [note] = loaded.notes
    assert note.key == "engine"
    assert "vLLM" in note.message


def test_latency_profiles_pick_the_calculator_as_upstream() -> None:
    plans = {
        name: compile_scenario(read(FLAT_CONFIGS[name]).scenario, environ={}).latency
        for name in ("profile-constant", "profile-per-token", "profile-coarse", "profile-fine")
    }
    assert not plans["profile-constant"].per_token_prefill
    assert plans["profile-per-token"].per_token_prefill
    assert not plans["profile-coarse"].per_token_prefill
    assert plans["profile-fine"].per_token_prefill


def test_a_file_with_version_or_sections_is_a_scenario() -> None:
    assert not is_flat({"version": 1, "model": "x"})
    assert not is_flat({"model": {"name": "x"}})
    assert not is_flat({"name": "x"})
    assert is_flat({"model": "x"})
    assert is_flat({"engine": "vllm"})
    assert problems("name: x\n") == ["c.yaml:1:1: version: is required"]


def test_unknown_key_is_an_error_with_a_hint_at_the_key() -> None:
    assert problems("model: m\nmax-num-seq: 3\n") == [
        "c.yaml:2:1: max-num-seq: unknown upstream config key; did you mean 'max-num-seqs'?"
    ]


def test_value_problems_are_located_at_the_flat_key() -> None:
    assert problems("model: m\nmax-num-seqs: 0\n") == [
        "c.yaml:2:15: max-num-seqs: Input should be greater than or equal to 1"
    ]
    [problem] = problems('model: m\nlora-modules:\n- \'{"path": "/x"}\'\n')
    assert problem.startswith("c.yaml:3:3: lora-modules[0].name: ")


def test_nested_blocks_of_newer_upstream_versions() -> None:
    text = (
        "model: m\nkvcache:\n  enable-kvcache: true\n  block-size: 8\n"
        "latencies:\n  time-to-first-token: 2s\n"
    )
    scenario = read(text).scenario
    assert scenario.kv_cache.enable_kvcache
    assert scenario.kv_cache.block_size == 8
    assert scenario.latency.time_to_first_token == 2
    [problem] = problems("model: m\nblock-size: 8\nkvcache:\n  block-size: 16\n")
    assert "mix the flat layout (block-size) with the nested kvcache block" in problem
    [problem] = problems("model: m\nkvcache:\n  block-size: 12\n")
    assert problem.startswith("c.yaml:3:15: block-size: ")


def test_dataset_keys_without_a_path_are_ignored_as_upstream() -> None:
    loaded = read("model: m\ndataset-table-name: answers\ndataset-in-memory: true\n")
    assert loaded.scenario.responses.dataset is None
    assert [note.key for note in loaded.notes] == ["dataset-table-name", "dataset-in-memory"]
    dataset = read("model: m\ndataset-path: /d.sqlite3\ndataset-table-name: t\n").scenario
    assert dataset.responses.dataset is not None
    assert dataset.responses.dataset.table == "t"


def test_toml_flat_files_too() -> None:
    scenario = load_scenario_text('model = "m"\nmax-num-seqs = 3\n', "c.toml")
    assert scenario.engine.max_num_seqs == 3


def test_the_admin_view_has_every_flat_key_and_nested_keys_can_be_set() -> None:
    scenario = read(FLAT_CONFIGS["dumped-config"]).scenario
    view = flatten(scenario)
    assert set(view) == set(flat_paths())
    assert view["min-tool-call-integer-param"] == 5
    assert view["dataset-path"] is None
    data = section_data(scenario)
    set_flat(data, "tool-call-extra-call-probability", 10)
    set_flat(data, "dataset-path", "/d.sqlite3")
    assert data["responses"]["tools"]["tool-call-extra-call-probability"] == 10
    assert data["responses"]["dataset"] == {"path": "/d.sqlite3"}
