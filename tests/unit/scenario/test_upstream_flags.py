"""Every upstream flag: accepted, mapped to the right scenario key, the right default, the right
error for a bad value (CFG-1 to CFG-4)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel

from llmsim.errors import ScenarioError
from llmsim.scenario.flat import flat_paths
from llmsim.scenario.model import Scenario
from llmsim.scenario.upstream import BY_NAME, KEYS, MAPPED_BY_PATH, REQUIRED
from llmsim.upstream.flags import FlagError, parse_args, split_args
from llmsim.upstream.settings import Built, run_scenario, upstream_scenario
from tests.support import PROJECT_ROOT

NO_VALUE = object()


@dataclass
class Case:
    """One flag: ``args`` set it (after ``--model m``); the scenario then has ``value`` at
    ``path`` (``NO_VALUE``: no scenario key); without the flag it has ``default``; ``bad``
    (if any) is refused with a message containing ``error``."""

    flag: str
    args: list[str]
    path: tuple[str, ...] | None
    value: Any
    default: Any
    bad: list[str] | None = None
    error: str = ""
    notes: list[str] = field(default_factory=list)


def duration(flag: str, section: str = "latency", default: float = 0.0) -> Case:
    return Case(
        flag,
        [f"--{flag}", "250ms"],
        (section, flag),
        0.25,
        default,
        [f"--{flag}", "-5ms"],
        "a duration must not be negative",
    )


def std_dev(flag: str, base: str) -> Case:
    return Case(
        flag,
        [f"--{base}", "1s", f"--{flag}", "200ms"],
        ("latency", flag),
        0.2,
        0.0,
        [f"--{base}", "1s", f"--{flag}", "400ms"],
        "must be at most 30%",
    )


def boolean(flag: str, path: tuple[str, ...], toggle: bool = False) -> Case:
    return Case(flag, [f"--{flag}"], path, True, False, [f"--{flag}=maybe"], "invalid argument")


def tool(flag: str, sample: str, value: Any, default: Any, bad: str, error: str) -> Case:
    return Case(
        flag,
        [f"--{flag}", sample],
        ("responses", "tools", flag),
        value,
        default,
        [f"--{flag}", bad],
        error,
    )


def ignored(flag: str, args: list[str], level: str = "info") -> Case:
    return Case(flag, args, None, NO_VALUE, NO_VALUE, notes=[level])


GE1 = "greater than or equal to 1"
CASES = [
    Case(
        "model", ["--model", "qwen"], ("model", "name"), "qwen", REQUIRED, ["--model", ""], "model"
    ),
    Case(
        "served-model-name",
        ["--served-model-name", "a", "b"],
        ("model", "served-model-name"),
        ["a", "b"],
        None,
    ),
    Case(
        "max-model-len",
        ["--max-model-len", "2048"],
        ("model", "max-model-len"),
        2048,
        1024,
        ["--max-model-len", "0"],
        GE1,
    ),
    Case("port", ["--port", "9001"], ("server", "port"), 9001, 8000, ["--port", "0"], GE1),
    Case(
        "max-request-body-size-mb",
        ["--max-request-body-size-mb", "16"],
        ("server", "max-request-body-size-mb"),
        16,
        4,
        ["--max-request-body-size-mb", "513"],
        "less than or equal to 512",
    ),
    Case(
        "data-parallel-size",
        ["--data-parallel-size", "2"],
        ("server", "data-parallel-size"),
        2,
        1,
        ["--data-parallel-size", "9"],
        "less than or equal to 8",
    ),
    Case(
        "data-parallel-rank",
        ["--data-parallel-rank", "3"],
        ("server", "data-parallel-rank"),
        3,
        -1,
        ["--data-parallel-rank", "8"],
        "less than or equal to 7",
    ),
    Case(
        "startup-duration",
        ["--startup-duration", "30s"],
        ("server", "startup-duration"),
        30.0,
        0.0,
        ["--startup-duration", "soon"],
        "invalid duration",
    ),
    boolean("enable-sleep-mode", ("server", "enable-sleep-mode")),
    boolean("enable-request-id-headers", ("server", "enable-request-id-headers")),
    boolean("log-http", ("server", "log-http")),
    Case(
        "ssl-certfile",
        ["--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem"],
        ("server", "ssl-certfile"),
        "c.pem",
        None,
        ["--ssl-certfile", "c.pem"],
        "give both ssl-certfile and ssl-keyfile",
    ),
    Case(
        "ssl-keyfile",
        ["--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem"],
        ("server", "ssl-keyfile"),
        "k.pem",
        None,
        ["--ssl-keyfile", "k.pem"],
        "give both ssl-certfile and ssl-keyfile",
    ),
    Case(
        "self-signed-certs",
        ["--self-signed-certs"],
        ("server", "self-signed-certs"),
        True,
        False,
        ["--self-signed-certs", "--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem"],
        "self-signed-certs does not go with",
    ),
    Case(
        "max-num-seqs",
        ["--max-num-seqs", "8"],
        ("engine", "max-num-seqs"),
        8,
        5,
        ["--max-num-seqs", "0"],
        GE1,
    ),
    Case(
        "max-waiting-queue-length",
        ["--max-waiting-queue-length", "0"],
        ("engine", "max-waiting-queue-length"),
        0,
        1000,
        ["--max-waiting-queue-length", "-1"],
        "greater than or equal to 0",
    ),
    Case("seed", ["--seed", "42"], ("seed",), 42, None, ["--seed", "x"], "not an integer"),
    Case(
        "latency-calculator",
        ["--latency-calculator", "per-token"],
        ("latency", "latency-calculator"),
        "per-token",
        None,
        ["--latency-calculator", "fast"],
        "Input should be",
    ),
    duration("time-to-first-token"),
    std_dev("time-to-first-token-std-dev", "time-to-first-token"),
    duration("inter-token-latency"),
    std_dev("inter-token-latency-std-dev", "inter-token-latency"),
    duration("prefill-overhead"),
    duration("prefill-time-per-token"),
    duration("prefill-time-std-dev"),
    duration("kv-cache-transfer-latency"),
    std_dev("kv-cache-transfer-latency-std-dev", "kv-cache-transfer-latency"),
    duration("kv-cache-transfer-time-per-token"),
    duration("kv-cache-transfer-time-std-dev"),
    duration("time-to-generate-image"),
    std_dev("time-to-generate-image-std-dev", "time-to-generate-image"),
    Case(
        "time-factor-under-load",
        ["--time-factor-under-load", "2.5"],
        ("latency", "time-factor-under-load"),
        2.5,
        1.0,
        ["--time-factor-under-load", "0.5"],
        GE1,
    ),
    Case(
        "mode",
        ["--mode", "echo"],
        ("responses", "mode"),
        "echo",
        "random",
        ["--mode", "loud"],
        "Input should be",
    ),
    boolean("omni", ("responses", "omni")),
    Case(
        "image-emission-rate",
        ["--image-emission-rate", "50"],
        ("responses", "image-emission-rate"),
        50,
        0,
        ["--image-emission-rate", "101"],
        "less than or equal to 100",
    ),
    Case(
        "dataset-path",
        ["--dataset-path", "/data/answers.sqlite3"],
        ("responses", "dataset", "path"),
        "/data/answers.sqlite3",
        None,
        ["--mode", "echo", "--dataset-path", "/data/a.sqlite3"],
        "echo mode does not use a dataset",
    ),
    Case(
        "dataset-url",
        ["--dataset-path", "/d.sqlite3", "--dataset-url", "https://example.com/d.sqlite3"],
        ("responses", "dataset", "url"),
        "https://example.com/d.sqlite3",
        None,
        ["--dataset-url", "https://example.com/d.sqlite3"],
        "responses.dataset.path: is required",
    ),
    Case(
        "dataset-in-memory",
        ["--dataset-path", "/d.sqlite3", "--dataset-in-memory"],
        ("responses", "dataset", "in-memory"),
        True,
        False,
        ["--dataset-in-memory=maybe"],
        "invalid argument",
    ),
    Case(
        "dataset-table-name",
        ["--dataset-path", "/d.sqlite3", "--dataset-table-name", "answers"],
        ("responses", "dataset", "table"),
        "answers",
        "llmd",
        ["--dataset-path", "/d.sqlite3", "--dataset-table-name", ""],
        "at least 1 character",
    ),
    Case(
        "default-embedding-dimensions",
        ["--default-embedding-dimensions", "1024"],
        ("model", "default-embedding-dimensions"),
        1024,
        384,
        ["--default-embedding-dimensions", "0"],
        GE1,
    ),
    tool("max-tool-call-integer-param", "50", 50, 100, "-1", "is above the max"),
    tool("min-tool-call-integer-param", "10", 10, 0, "101", "is above the max"),
    tool("max-tool-call-number-param", "5.5", 5.5, 100, "-1", "is above the max"),
    tool("min-tool-call-number-param", "1.5", 1.5, 0, "101", "is above the max"),
    tool("max-tool-call-array-param-length", "3", 3, 5, "0", "is above the max"),
    tool("min-tool-call-array-param-length", "2", 2, 1, "-1", "greater than or equal to 0"),
    tool(
        "tool-call-not-required-param-probability", "30", 30, 50, "101", "less than or equal to 100"
    ),
    tool(
        "object-tool-call-not-required-field-probability",
        "30",
        30,
        50,
        "-1",
        "greater than or equal to 0",
    ),
    tool("tool-call-extra-call-probability", "30", 30, 45, "101", "less than or equal to 100"),
    boolean("skip-tool-validation", ("responses", "tools", "skip-tool-validation")),
    Case("max-loras", ["--max-loras", "2"], ("lora", "max-loras"), 2, 1, ["--max-loras", "0"], GE1),
    Case(
        "max-cpu-loras",
        ["--max-loras", "2", "--max-cpu-loras", "4"],
        ("lora", "max-cpu-loras"),
        4,
        None,
        ["--max-loras", "2", "--max-cpu-loras", "1"],
        "max-cpu-loras must be at least max-loras",
    ),
    Case(
        "lora-modules",
        ["--lora-modules", '{"name":"sql","path":"/a"}', '{"name":"chat","path":"/b"}'],
        ("lora", "lora-modules"),
        [
            {"name": "sql", "path": "/a", "base_model_name": None},
            {"name": "chat", "path": "/b", "base_model_name": None},
        ],
        [],
        ["--lora-modules", "{not json"],
        "must be JSON",
    ),
    boolean("enable-kvcache", ("kv-cache", "enable-kvcache")),
    Case(
        "kv-cache-size",
        ["--kv-cache-size", "2048"],
        ("kv-cache", "kv-cache-size"),
        2048,
        1024,
        ["--kv-cache-size", "-1"],
        GE1,
    ),
    Case(
        "block-size",
        ["--block-size", "32"],
        ("kv-cache", "block-size"),
        32,
        16,
        ["--block-size", "10"],
        "Input should be 8, 16",
    ),
    Case("hash-seed", ["--hash-seed", "abc"], ("kv-cache", "hash-seed"), "abc", None),
    Case(
        "global-cache-hit-threshold",
        ["--global-cache-hit-threshold", "0.5"],
        ("kv-cache", "global-cache-hit-threshold"),
        0.5,
        0.0,
        ["--global-cache-hit-threshold", "1.5"],
        "less than or equal to 1",
    ),
    Case(
        "zmq-endpoint",
        ["--zmq-endpoint", "tcp://listener:5557"],
        ("kv-cache", "zmq-endpoint"),
        "tcp://listener:5557",
        "tcp://127.0.0.1:5557",
    ),
    Case(
        "event-batch-size",
        ["--event-batch-size", "4"],
        ("kv-cache", "event-batch-size"),
        4,
        16,
        ["--event-batch-size", "0"],
        GE1,
    ),
    boolean("use-vllm-map-event-format", ("kv-cache", "use-vllm-map-event-format")),
    Case(
        "kv-events-replay-endpoint",
        ["--kv-events-replay-endpoint", "tcp://*:5558"],
        ("kv-cache", "kv-events-replay-endpoint"),
        "tcp://*:5558",
        "",
    ),
    Case(
        "kv-events-replay-queue-size",
        ["--kv-events-replay-queue-size", "8"],
        ("kv-cache", "kv-events-replay-queue-size"),
        8,
        1024,
        ["--kv-events-replay-queue-size", "0"],
        GE1,
    ),
    Case(
        "failure-injection-rate",
        ["--failure-injection-rate", "10"],
        ("failures", "failure-injection-rate"),
        10,
        0,
        ["--failure-injection-rate", "101"],
        "less than or equal to 100",
    ),
    Case(
        "failure-types",
        ["--failure-types", "rate_limit", "server_error"],
        ("failures", "failure-types"),
        ["rate_limit", "server_error"],
        [],
        ["--failure-types", "meltdown"],
        "Input should be 'rate_limit'",
    ),
    Case(
        "fake-metrics",
        ["--fake-metrics", '{"running-requests": 3, "kv-cache-usage": 0.5}'],
        ("metrics", "fake-metrics", "running-requests"),
        3,
        None,
        ["--fake-metrics", '{"kv-cache-usage": 3}'],
        "kv-cache-usage must be between 0 and 1",
    ),
    Case(
        "fake-metrics-refresh-interval",
        ["--fake-metrics-refresh-interval", "1s"],
        ("metrics", "fake-metrics-refresh-interval"),
        1.0,
        0.1,
        ["--fake-metrics-refresh-interval", "0s"],
        "greater than 0",
    ),
    Case(
        "force-dummy-tokenizer",
        ["--force-dummy-tokenizer"],
        ("model", "tokenizer"),
        "simulated",
        "simulated",
        ["--force-dummy-tokenizer=maybe"],
        "invalid argument",
    ),
    Case(
        "engine",
        ["--engine", "vllm"],
        None,
        NO_VALUE,
        NO_VALUE,
        ["--engine", "tgi"],
        "unknown engine",
    ),
    Case(
        "context-length",
        ["--context-length", "2048"],
        ("model", "max-model-len"),
        2048,
        1024,
        ["--context-length", "0"],
        GE1,
    ),
    Case(
        "max-running-requests",
        ["--max-running-requests", "7"],
        ("engine", "max-num-seqs"),
        7,
        5,
        ["--max-running-requests", "x"],
        "not an integer",
    ),
    Case(
        "max-queued-requests",
        ["--max-queued-requests", "7"],
        ("engine", "max-waiting-queue-length"),
        7,
        1000,
        ["--max-queued-requests", "-1"],
        "greater than or equal to 0",
    ),
    Case(
        "render-url",
        ["--render-url", "http://localhost:8082"],
        None,
        NO_VALUE,
        NO_VALUE,
        notes=["warning"],
    ),
    Case(
        "render-timeout",
        ["--render-timeout", "10s"],
        None,
        NO_VALUE,
        NO_VALUE,
        ["--render-timeout", "soon"],
        "invalid argument",
        notes=["warning"],
    ),
    Case(
        "mm-render-timeout",
        ["--mm-render-timeout", "10s"],
        None,
        NO_VALUE,
        NO_VALUE,
        ["--mm-render-timeout", "-1s"],
        "must not be negative",
        notes=["warning"],
    ),
    Case(
        "mm-encoder-only",
        ["--mm-encoder-only"],
        None,
        NO_VALUE,
        NO_VALUE,
        ["--mm-encoder-only=x"],
        "invalid argument",
        notes=["warning"],
    ),
    ignored("mm-processor-kwargs", ["--mm-processor-kwargs", '{"num_crops": 4}']),
    ignored("ec-transfer-config", ["--ec-transfer-config", "{}"]),
    ignored("enforce-eager", ["--enforce-eager"]),
    ignored("enable-prefix-caching", ["--no-enable-prefix-caching"]),
    Case(
        "tensor-parallel-size",
        ["--tensor-parallel-size", "8"],
        None,
        NO_VALUE,
        NO_VALUE,
        ["--tensor-parallel-size", "x"],
        "not an integer",
        notes=["info"],
    ),
    ignored("tokenizers-cache-dir", ["--tokenizers-cache-dir", "/tmp"], "warning"),
    Case(
        "zmq-max-connect-attempts",
        ["--zmq-max-connect-attempts", "3"],
        None,
        NO_VALUE,
        NO_VALUE,
        ["--zmq-max-connect-attempts", "-1"],
        "must not be negative",
        notes=["warning"],
    ),
]


def build(args: list[str], environ: dict[str, str] | None = None) -> Built:
    return upstream_scenario(args, environ or {})


def at(scenario: Scenario, path: tuple[str, ...]) -> Any:
    value: Any = scenario
    for part in path:
        value = None if value is None else getattr(value, part.replace("-", "_"))
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        return [item.model_dump(by_alias=True) for item in value]
    return value


def refusal(args: list[str]) -> str:
    with pytest.raises((FlagError, ScenarioError)) as caught:
        build(["--model", "m", *args])
    return str(caught.value)


def test_the_table_covers_every_upstream_key() -> None:
    assert sorted(case.flag for case in CASES) == sorted(key.name for key in KEYS)


def test_every_mapped_key_has_its_flat_form_at_the_same_path() -> None:
    for path, key in MAPPED_BY_PATH.items():
        assert flat_paths()[key.name] == path, key.name


def test_flat_keys_are_unique() -> None:
    paths = flat_paths()
    assert len(set(paths.values())) == len(paths)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.flag)
def test_flag_is_accepted_and_sets_its_scenario_key(case: Case) -> None:
    built = build(["--model", "m", *case.args])
    if case.path is not None:
        assert at(built.scenario, case.path) == case.value
    levels = [level for level, _ in built.notes]
    assert levels == case.notes
    for _, text in built.notes:
        assert f"-{case.flag}" in text


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.flag)
def test_flag_default_is_upstreams(case: Case) -> None:
    key = BY_NAME[case.flag]
    if case.default is REQUIRED:
        assert key.default is REQUIRED
        with pytest.raises(ScenarioError, match="model parameter is empty"):
            build([])
        return
    if case.path is None:
        assert key.path is None
        return
    if key.effect == "mapped":
        assert key.path == case.path[: len(key.path)]
        assert key.default == case.default
    if case.path[:2] == ("responses", "dataset"):
        assert build(["--model", "m"]).scenario.responses.dataset is None
        if case.default is not None:  # a dataset's own keys
            given = build(["--model", "m", "--dataset-path", "/d.sqlite3"]).scenario
            assert at(given, case.path) == case.default
        return
    assert at(build(["--model", "m"]).scenario, case.path) == case.default


@pytest.mark.parametrize("case", [c for c in CASES if c.bad is not None], ids=lambda c: c.flag)
def test_bad_value_is_refused_naming_the_flag(case: Case) -> None:
    assert case.bad is not None
    message = refusal(case.bad)
    assert case.error in message
    assert case.flag in message


def test_value_forms_equal_and_space() -> None:
    spaced = build(["--model", "m", "--max-num-seqs", "8", "--time-to-first-token", "2s"])
    joined = build(["--model=m", "--max-num-seqs=8", "--time-to-first-token=2s"])
    assert spaced.scenario == joined.scenario
    assert joined.scenario.engine.max_num_seqs == 8


def test_go_integer_forms() -> None:
    assert build(["--model", "m", "--max-num-seqs", "0x10"]).scenario.engine.max_num_seqs == 16


def test_bare_duration_number_means_milliseconds() -> None:
    built = build(["--model", "m", "--prefill-time-per-token=200"])
    assert built.scenario.latency.prefill_time_per_token == pytest.approx(0.2)


def test_bool_flag_forms() -> None:
    def kv(*args: str) -> bool:
        return build(["--model", "m", *args]).scenario.kv_cache.enable_kvcache

    assert kv("--enable-kvcache")
    assert kv("--enable-kvcache=true")
    assert not kv("--enable-kvcache=false")
    assert not kv("--enable-kvcache=0")
    assert kv("--enable-kvcache", "true")


def test_bool_flag_with_a_separate_false_still_sets_true_and_warns_CFG_3() -> None:
    built = build(["--model", "m", "--enable-kvcache", "false", "--max-num-seqs", "3"])
    assert built.scenario.kv_cache.enable_kvcache
    assert built.scenario.engine.max_num_seqs == 3
    [(level, text)] = built.notes
    assert level == "warning"
    assert "--enable-kvcache=false" in text


def test_toggles_have_a_no_form_and_the_last_one_wins() -> None:
    def sleep(*args: str) -> bool:
        return build(["--model", "m", *args]).scenario.server.enable_sleep_mode

    assert sleep("--enable-sleep-mode")
    assert not sleep("--enable-sleep-mode", "--no-enable-sleep-mode")
    assert sleep("--no-enable-sleep-mode", "--enable-sleep-mode")
    assert not sleep("--enable-sleep-mode=false")
    assert not build(["--model", "m", "--omni", "--no-omni"]).scenario.responses.omni


def test_no_form_of_a_plain_bool_flag_is_unknown() -> None:
    with pytest.raises(FlagError, match="unknown flag: --no-enable-kvcache"):
        build(["--model", "m", "--no-enable-kvcache"])


def test_unknown_flag_gets_a_hint() -> None:
    with pytest.raises(
        FlagError, match=r"unknown flag: --max-num-seq \(did you mean --max-num-seqs\?\)"
    ):
        build(["--model", "m", "--max-num-seq", "3"])


def test_value_flag_at_the_end_needs_its_argument() -> None:
    with pytest.raises(FlagError, match="flag needs an argument: --port"):
        build(["--model", "m", "--port"])


def test_list_flags_take_values_up_to_the_next_flag_and_may_repeat() -> None:
    built = build(
        [
            "--served-model-name",
            "a",
            "b",
            "--model",
            "m",
            "--served-model-name=c",
            "--failure-types",
            "rate_limit",
        ]
    )
    assert built.scenario.model.served_model_name == ["a", "b", "c"]
    assert built.scenario.failures.failure_types == ["rate_limit"]


def test_list_flag_values_stop_at_the_short_verbosity_flag() -> None:
    built = build(["--model", "m", "--served-model-name", "a", "-v", "5"])
    assert built.scenario.model.served_model_name == ["a"]
    assert built.parsed.verbosity == 5


def test_empty_list_flags_reset_the_config_file_values_CFG_1(tmp_path: Any) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "model: m\nserved-model-name: [x, y]\nfailure-types: [rate_limit]\n"
        'lora-modules: [\'{"name": "l"}\']\nfake-metrics: {running-requests: 2}\n'
    )
    kept = build(["--config", str(config)]).scenario
    assert kept.model.served_model_name == ["x", "y"]
    assert kept.metrics.fake_metrics is not None
    reset = build(
        [
            "--config",
            str(config),
            "--served-model-name",
            "--failure-types",
            "--lora-modules",
            "--fake-metrics",
        ]
    ).scenario
    assert reset.model.served_names == ["m"]
    assert reset.failures.failure_types == []
    assert reset.lora.lora_modules == []
    assert reset.metrics.fake_metrics is None


def test_fake_metrics_flag_replaces_the_file_object_whole_FAKE_1(tmp_path: Any) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("model: m\nfake-metrics: {running-requests: 2, waiting-requests: 4}\n")
    fake = build(
        ["--config", str(config), "--fake-metrics", '{"running-requests": 9}']
    ).scenario.metrics.fake_metrics
    assert fake is not None
    assert fake.running_requests == 9
    assert fake.waiting_requests is None


def test_klog_verbosity_maps_to_log_levels() -> None:
    assert parse_args([]).log_level == logging.INFO
    assert parse_args(["--v=3"]).log_level == logging.INFO
    assert parse_args(["--v=4"]).log_level == logging.DEBUG
    assert parse_args(["-v", "5"]).log_level == logging.DEBUG
    assert parse_args(["-v=4"]).verbosity == 4
    assert parse_args(["--v", "1"]).verbosity == 1
    with pytest.raises(FlagError, match='invalid argument "x" for "--v"'):
        parse_args(["--v=x"])


def test_other_klog_flags_are_accepted_and_ignored() -> None:
    parsed = parse_args(
        ["--logtostderr", "--vmodule", "x=2", "--log_dir=/tmp", "--skip_headers=true"]
    )
    assert parsed.assignments == []
    assert {note.key for note in parsed.notes} == {
        "--logtostderr",
        "--vmodule",
        "--log_dir",
        "--skip_headers",
    }


def test_unknown_short_flag_is_refused() -> None:
    with pytest.raises(FlagError, match="unknown shorthand flag: 'p' in -port"):
        parse_args(["-port", "8000"])


def test_stray_arguments_are_reported_not_fatal() -> None:
    parsed = parse_args(["--model", "m", "extra"])
    assert [note.key for note in parsed.notes] == ["extra"]


def test_precedence_flag_over_environment_over_file_over_default_CFG_1(tmp_path: Any) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("model: from-file\nhash-seed: file-seed\nmax-num-seqs: 3\n")
    env = {"SIM_MODEL": "from-env", "PYTHONHASHSEED": "env-seed"}
    assert build(["--config", str(config)]).scenario.model.name == "from-file"
    from_env = build(["--config", str(config)], env).scenario
    assert (from_env.model.name, from_env.kv_cache.hash_seed) == ("from-env", "env-seed")
    flags = build(
        ["--config", str(config), "--model", "flag", "--hash-seed", "flag-seed"], env
    ).scenario
    assert (flags.model.name, flags.kv_cache.hash_seed) == ("flag", "flag-seed")
    assert flags.engine.max_num_seqs == 3
    assert (
        build(
            ["--config", str(config)], {"SIM_MODEL": "", "PYTHONHASHSEED": ""}
        ).scenario.model.name
        == "from-file"
    )


def test_sim_model_alone_gives_the_model_CFG_4() -> None:
    assert build([], {"SIM_MODEL": "env-model"}).scenario.model.served_names == ["env-model"]


def test_llmsim_environment_keys_sit_between_flags_and_file() -> None:
    env = {"LLMSIM_ENGINE__MAX_NUM_SEQS": "7", "LLMSIM_LATENCY__TIME_TO_FIRST_TOKEN": "300ms"}
    built = build(["--model", "m"], env).scenario
    assert built.engine.max_num_seqs == 7
    assert built.latency.time_to_first_token == pytest.approx(0.3)
    assert build(["--model", "m", "--max-num-seqs", "2"], env).scenario.engine.max_num_seqs == 2
    with pytest.raises(
        ScenarioError, match=r"\$LLMSIM_ENGINE__MAX_NUM_SEQ: engine.max-num-seq: unknown key"
    ):
        build(["--model", "m"], {"LLMSIM_ENGINE__MAX_NUM_SEQ": "7"})


def test_config_file_problems_are_located_in_the_file(tmp_path: Any) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("model: m\nmax-num-seqs: 0\n")
    with pytest.raises(ScenarioError) as caught:
        build(["--config", str(config)])
    assert [str(p) for p in caught.value.problems] == [
        f"{config}:2:15: max-num-seqs: Input should be greater than or equal to 1"
    ]


def test_split_args_sets_upstream_flags_and_their_values_aside() -> None:
    own, upstream = split_args(
        [
            "s.yaml",
            "--port",
            "9",
            "--max-num-seqs",
            "8",
            "--enable-kvcache",
            "true",
            "--served-model-name",
            "a",
            "b",
            "-v",
            "4",
            "--set",
            "x=1",
            "--access-log",
            "--omni",
        ],
        own_values=frozenset({"--port", "--set"}),
        own_switches=frozenset({"--access-log"}),
    )
    assert own == ["s.yaml", "--port", "9", "--set", "x=1", "--access-log"]
    assert upstream == [
        "--max-num-seqs",
        "8",
        "--enable-kvcache",
        "true",
        "--served-model-name",
        "a",
        "b",
        "-v",
        "4",
        "--omni",
    ]


def test_the_flag_reference_documents_every_flag() -> None:
    text = (PROJECT_ROOT / "docs" / "upstream-flags.md").read_text()
    for key in KEYS:
        assert f"`--{key.name}`" in text, key.name


def test_llmsim_run_layers_set_over_flags_over_environment_over_the_scenario(tmp_path: Any) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "version: 1\nmodel: {name: file-model}\nengine: {max-num-seqs: 2}\n"
        "kv-cache: {hash-seed: file-seed}\nlatency: {inter-token-latency: 5ms}\n"
    )
    env = {"SIM_MODEL": "env-model", "PYTHONHASHSEED": "env-seed"}
    built = run_scenario(str(scenario), ["--max-num-seqs", "3"], environ=env).scenario
    assert (built.model.name, built.kv_cache.hash_seed) == ("env-model", "env-seed")
    assert built.engine.max_num_seqs == 3
    assert built.latency.inter_token_latency == pytest.approx(0.005)
    top = run_scenario(
        str(scenario),
        ["--max-num-seqs", "3", "--model", "flag-model"],
        ["engine.max-num-seqs=4"],
        environ=env,
    ).scenario
    assert (top.model.name, top.engine.max_num_seqs) == ("flag-model", 4)


def test_llmsim_run_without_a_scenario_uses_the_builtin_one_or_upstream_defaults() -> None:
    builtin = run_scenario(None, [], environ={}).scenario
    assert builtin.name == "default"
    assert builtin.latency.time_to_first_token > 0
    flags = run_scenario(None, ["--max-num-seqs", "4"], environ={}, upstream_defaults=True)
    assert flags.scenario.latency.time_to_first_token == 0
    assert flags.scenario.model.max_model_len == 1024
    assert flags.scenario.engine.max_num_seqs == 4


def test_llmsim_run_refuses_a_scenario_and_a_config_file(tmp_path: Any) -> None:
    with pytest.raises(FlagError, match="not both"):
        run_scenario("s.yaml", ["--config", "c.yaml"], environ={})


def test_set_problems_name_their_source() -> None:
    with pytest.raises(ScenarioError) as caught:
        run_scenario(None, [], ["engine.max-num-seqs=0"], environ={})
    assert [str(p) for p in caught.value.problems] == [
        "--set: engine.max-num-seqs: Input should be greater than or equal to 1"
    ]
