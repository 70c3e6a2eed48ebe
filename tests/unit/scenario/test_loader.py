from pathlib import Path

import pytest

from llmsim.errors import ScenarioError
from llmsim.scenario.distributions import LognormalDistribution
from llmsim.scenario.loader import load_scenario, load_scenario_text


def problems(text: str, filename: str = "s.yaml", overrides: tuple[str, ...] = ()) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(text, filename, overrides)
    return [str(p) for p in caught.value.problems]


def test_minimal_scenario_takes_upstream_defaults() -> None:
    scenario = load_scenario_text("version: 1\n", "s.yaml")
    assert scenario.model.max_model_len == 1024
    assert scenario.engine.max_num_seqs == 5
    assert scenario.latency.time_to_first_token == 0.0
    assert scenario.responses.mode == "random"
    assert scenario.model.served_names == [scenario.model.name]


def test_served_model_name_accepts_one_name_or_a_list() -> None:
    one = load_scenario_text("version: 1\nmodel: {served-model-name: qwen}\n", "s.yaml")
    many = load_scenario_text("version: 1\nmodel: {served-model-name: [a, b]}\n", "s.yaml")
    assert one.model.served_names == ["qwen"]
    assert many.model.served_names == ["a", "b"]


def test_version_is_required() -> None:
    assert problems("name: x\n") == ["s.yaml:1:1: version: is required"]


def test_wrong_type_names_file_line_column_and_key() -> None:
    text = "version: 1\nengine:\n  max-num-seqs: many\n"
    [problem] = problems(text)
    assert problem.startswith("s.yaml:3:17: engine.max-num-seqs: ")
    assert "integer" in problem


def test_unknown_key_gets_a_did_you_mean_hint_at_the_key() -> None:
    text = "version: 1\nengine:\n  max-num-seq: 3\n"
    assert problems(text) == [
        "s.yaml:3:3: engine.max-num-seq: unknown key; did you mean 'max-num-seqs'?"
    ]


def test_unknown_key_hint_names_the_section_where_the_key_belongs() -> None:
    text = "version: 1\nmodel:\n  max-num-seqs: 3\n"
    [problem] = problems(text)
    assert "did you mean 'max-num-seqs' (a key of 'engine')?" in problem


def test_negative_duration_is_rejected() -> None:
    text = "version: 1\nlatency:\n  inter-token-latency: -5ms\n"
    assert problems(text) == [
        "s.yaml:3:24: latency.inter-token-latency: a duration must not be negative"
    ]


def test_std_dev_above_30_percent_is_rejected_at_the_std_dev_key() -> None:
    text = "version: 1\nlatency:\n  time-to-first-token: 1s\n  time-to-first-token-std-dev: 400ms\n"
    assert problems(text) == [
        "s.yaml:4:32: latency.time-to-first-token-std-dev: must be at most 30% of "
        "time-to-first-token (1s)"
    ]


def test_std_dev_beside_a_distribution_is_rejected() -> None:
    text = (
        "version: 1\nlatency:\n  inter-token-latency: {distribution: uniform, min: 1ms, max: 2ms}\n"
        "  inter-token-latency-std-dev: 1ms\n"
    )
    [problem] = problems(text)
    assert "latency.inter-token-latency-std-dev" in problem
    assert "put the spread in the distribution" in problem


def test_every_problem_is_reported_not_only_the_first() -> None:
    text = "version: 2\nengine:\n  max-num-seqs: 0\nbogus: 1\n"
    found = problems(text)
    assert len(found) == 3
    assert found[0].startswith("s.yaml:1:10: version: ")
    assert found[1].startswith("s.yaml:3:17: engine.max-num-seqs: ")
    assert found[2].startswith("s.yaml:4:1: bogus: unknown key")


def test_distribution_errors_point_into_the_distribution() -> None:
    text = (
        "version: 1\nlatency:\n  inter-token-latency:\n    distribution: lognormal\n"
        "    median: 12ms\n"
    )
    [problem] = problems(text)
    assert problem.startswith("s.yaml:4:5: latency.inter-token-latency: ")
    assert "median and p99 go together" in problem


def test_unknown_distribution_name_is_rejected() -> None:
    text = "version: 1\nlatency:\n  inter-token-latency: {distribution: pareto, value: 1ms}\n"
    [problem] = problems(text)
    assert "latency.inter-token-latency" in problem
    assert "pareto" in problem


def test_yaml_syntax_error_is_located() -> None:
    [problem] = problems("version: 1\nmodel: [unclosed\n")
    assert problem.startswith("s.yaml:3:")


def test_duplicate_yaml_key_is_an_error() -> None:
    [problem] = problems("version: 1\nversion: 1\n")
    assert "duplicate" in problem


def test_toml_scenarios_use_the_same_model_and_locate_problems() -> None:
    good = load_scenario_text(
        'version = 1\n[latency]\ntime-to-first-token = "200ms"\n'
        '[latency.inter-token-latency]\ndistribution = "lognormal"\nmedian = "10ms"\n'
        'p99 = "30ms"\n',
        "s.toml",
    )
    assert good.latency.time_to_first_token == pytest.approx(0.2)
    assert isinstance(good.latency.inter_token_latency, LognormalDistribution)
    [problem] = problems('version = 1\n\n[engine]\nmax-num-seqs = "x"\n', "s.toml")
    assert problem.startswith("s.toml:4:1: engine.max-num-seqs: ")


def test_toml_syntax_error_is_located() -> None:
    [problem] = problems("version = 1\n[engine\n", "s.toml")
    assert problem.startswith("s.toml:2:")


def test_overrides_set_any_key_and_are_validated() -> None:
    scenario = load_scenario_text(
        "version: 1\n", "s.yaml", ("latency.time-to-first-token=500ms", "engine.max-num-seqs=8")
    )
    assert scenario.latency.time_to_first_token == pytest.approx(0.5)
    assert scenario.engine.max_num_seqs == 8
    assert problems("version: 1\n", overrides=("engine.max-num-seqs=0",)) == [
        "--set:1:1: engine.max-num-seqs: Input should be greater than or equal to 1"
    ]


def test_malformed_override_is_reported() -> None:
    assert "expected key.path=value" in problems("version: 1\n", overrides=("engine",))[0]


def test_builtin_default_scenario_loads() -> None:
    scenario = load_scenario(None)
    assert scenario.name == "default"


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml")


def test_every_shipped_scenario_round_trips_through_its_data_without_warnings() -> None:
    import warnings

    from llmsim.scenario.loader import validate_data
    from llmsim.scenario.overlays import section_data
    from tests.support import PROJECT_ROOT

    for path in sorted((PROJECT_ROOT / "scenarios").glob("*.yaml")):
        scenario = load_scenario(path)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            data = section_data(scenario)
        assert validate_data(data) == scenario, path.name
