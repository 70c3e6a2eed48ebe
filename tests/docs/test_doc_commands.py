"""Every command block of the docs is exercised, so the docs cannot rot silently.

The ``sh``/``console`` and ``python`` blocks of README.md and docs/*.md are collected
(tests/docs/blocks.py); each must have an entry in ``HOW`` (a new block without one fails
``test_every_command_block_has_a_way``). An entry either runs the block — as written, with the
doc's ``localhost:8000`` pointed at a simulator this test started and ``.venv/bin/`` at this
interpreter's — or names the test that runs the same command (its file and function must
exist), or says what the block needs that a test machine has not: ``bench/doc_blocks.py``
(``make doc-blocks``) runs those, and must know exactly the blocks marked so.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ServerFactory
from tests.docs.blocks import doc_blocks
from tests.support import PROJECT_ROOT, free_port

DOC_BLOCKS_SCRIPT = "bench/doc_blocks.py"
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Run:
    """Run the block (bash, or python for python blocks) in ``cwd`` ("project" or a fresh
    temporary folder) with ``files`` written there first; ``server`` starts a simulator on
    the given scenario file (relative to the project) that ``localhost:8000`` then points at.
    ``replace`` rewrites the block first (long runs shortened); ``expect`` must appear in the
    output."""

    cwd: str = "tmp"
    files: tuple[tuple[str, str], ...] = ()
    server: str | None = None
    replace: tuple[tuple[str, str], ...] = ()
    expect: tuple[str, ...] = ()


@dataclass(frozen=True)
class Covered:
    """Another test runs this block's commands: ``path::function``."""

    test: str


@dataclass(frozen=True)
class Needs:
    """The block needs ``tool``, which a test machine has not (a container engine, a cluster,
    benchmark clients installed from PyPI into venvs of their own): ``bench/doc_blocks.py``
    runs it (``make doc-blocks``), or says why it cannot and runs what it can."""

    tool: str


CONVERSATIONS = (
    '{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]}\n'
)
UPSTREAM_CONFIG = (
    "model: Qwen/Qwen2.5-1.5B-Instruct\nport: 8000\nmax-num-seqs: 4\nmax-loras: 1\n"
    "max-cpu-loras: 1\ntime-to-first-token: 100\nkv_cache_transfer_latency: 5\n"
)
MY_SCENARIO = "version: 1\nmodel: {name: Qwen/Qwen2.5-1.5B-Instruct}\n"
PORTS = (("8001", "{free1}"), ("8002", "{free2}"))
"""Doc blocks that start their own servers get free ports instead of the doc's."""

HOW: dict[str, Run | Covered | Needs] = {
    "README.md#1": Covered("tests/docs/test_doc_commands.py::test_make_targets_of_the_quick_start"),
    "README.md#2": Run(server="default", expect=('"chat.completion"',)),
    "README.md#3": Run(server="default"),
    "README.md#4": Run(
        cwd="project",
        replace=(
            (
                'make run ARGS="scenarios/slow-ttft.yaml --port 9000"',
                'make -n run ARGS="scenarios/slow-ttft.yaml --port 9000"',
            ),
            (
                ".venv/bin/llmsim run --set latency.time-to-first-token=500ms --set "
                "engine.max-num-seqs=8",
                ".venv/bin/llmsim plan --set latency.time-to-first-token=500ms --set "
                "engine.max-num-seqs=8",
            ),
        ),
        expect=("slow-ttft.yaml: ok", "llmsim run scenarios/slow-ttft.yaml --port 9000", "500ms"),
    ),
    "docs/admin.md#1": Run(server="default", expect=('"time-to-first-token"',)),
    "docs/benchmarking.md#1": Run(
        cwd="project",
        replace=(("/tmp/bench-tokenizer", "{tmp}/tok"),),
        expect=("tok",),
    ),
    "docs/benchmarking.md#2": Run(replace=(("/tmp/bench-tokenizer", "{tmp}/tok"),)),
    "docs/benchmarking.md#3": Run(
        cwd="project",
        replace=(
            (
                ".venv/bin/llmsim run bench/benchmarking/scenario.yaml --port 8000",
                "python bench/make_tokenizer.py {tmp}/tok && "
                ".venv/bin/llmsim plan bench/benchmarking/scenario.yaml",
            ),
            ("/tmp/bench-tokenizer", "{tmp}/tok"),
        ),
        expect=("40ms",),
    ),
    "docs/benchmarking.md#4": Needs("pip venvs"),
    "docs/benchmarking.md#5": Needs("guidellm"),
    "docs/benchmarking.md#6": Needs("aiperf"),
    "docs/benchmarking.md#7": Needs("inference-perf"),
    "docs/benchmarking.md#8": Run(
        cwd="project",
        replace=(("make doc-blocks", "make -n doc-blocks"),),
        expect=("bench/doc_blocks.py guidellm aiperf", "docs/benchmarking.md#5", "guidellm"),
    ),
    "docs/calibration.md#1": Needs("vLLM on a GPU + OTLP collector"),
    "docs/calibration.md#2": Needs("vLLM on a GPU + OTLP collector"),
    "docs/calibration.md#3": Covered(
        "tests/unit/calibration/test_cli.py::test_calibrate_fits_each_real_vllm_run"
    ),
    "docs/calibration.md#4": Covered(
        "tests/integration/test_replay.py::test_replay_prints_an_aggregate_table_and_a_line_per_request"
    ),
    "docs/cookbook.md#1": Run(
        cwd="project",
        replace=PORTS,
        expect=('"brownout"', "vllm:num_requests_running"),
    ),
    "docs/cookbook.md#2": Run(
        cwd="project",
        replace=(*PORTS, ("/tmp/decode.yaml", "{tmp}/decode.yaml")),
        expect=('"finish_reason":"remote_decode"', '"do_remote_prefill":true'),
    ),
    "docs/cookbook.md#3": Run(
        cwd="project", replace=PORTS, expect=('running_lora_adapters="sql-lora"',)
    ),
    "docs/getting-started.md#1": Run(expect=("my-first.yaml: ok", "seed: 42")),
    "docs/getting-started.md#2": Run(
        files=(
            ("my-first.yaml", "version: 1\nseed: 42\nmodel: {name: Qwen/Qwen2.5-1.5B-Instruct}\n"),
        ),
        replace=(("8000", "{free1}"),),
        expect=('"chat.completion"', "vllm:time_to_first_token_seconds_count"),
    ),
    "docs/datasets.md#1": Run(
        files=(("conversations.jsonl", CONVERSATIONS),),
        replace=(("data/chat.sqlite3", "chat.sqlite3"),),
        expect=("rows to chat.sqlite3",),
    ),
    "docs/datasets.md#2": Covered(
        "tests/unit/test_progress.py::test_cli_download_and_convert_keep_logs_clean"
    ),
    "docs/scenarios.md#2": Covered(
        "tests/integration/test_plan_plot.py::test_plot_writes_a_png_and_still_prints_the_plan"
    ),
    "docs/deployment.md#1": Needs("podman"),
    "docs/deployment.md#2": Needs("podman"),
    "docs/deployment.md#3": Needs("helm + cluster"),
    "docs/deployment.md#4": Needs("helm + cluster"),
    "docs/kv-cache.md#1": Covered(
        "tests/integration/test_kv_cache.py::"
        "test_events_carry_the_llm_d_hash_chain_and_prefix_hits_KV_2_KV_4_KV_5_ZMQ_1"
    ),
    "docs/lora.md#1": Run(
        cwd="project",
        replace=((".venv/bin/llmsim run scenarios/multi-lora.yaml --port 8000 &", ""),),
        server="scenarios/multi-lora.yaml",
        expect=(
            "LoRA adapter 'new-lora' added successfully",
            "LoRA adapter 'new-lora' removed successfully",
            "vllm:lora_requests_info",
        ),
    ),
    "docs/performance.md#1": Covered("tests/docs/test_doc_commands.py::test_bench_arguments_parse"),
    "docs/pytest-plugin.md#1": Run(
        cwd="project", replace=(("pip install -e .", "python -m pip install --no-deps -q -e ."),)
    ),
    "docs/pytest-plugin.md#2": Covered(
        "tests/plugin/test_plugin.py::test_doc_examples_are_these_tests"
    ),
    "docs/pytest-plugin.md#3": Covered(
        "tests/plugin/test_plugin.py::test_doc_examples_are_these_tests"
    ),
    "docs/pytest-plugin.md#4": Covered(
        "tests/plugin/test_plugin.py::test_doc_examples_are_these_tests"
    ),
    "docs/pytest-plugin.md#5": Covered(
        "tests/plugin/test_plugin.py::test_doc_examples_are_these_tests"
    ),
    "docs/pytest-plugin.md#6": Covered(
        "tests/plugin/test_plugin.py::test_doc_examples_are_these_tests"
    ),
    "docs/pytest-plugin.md#7": Covered(
        "tests/plugin/test_plugin.py::test_doc_examples_are_these_tests"
    ),
    "docs/pytest-plugin.md#8": Covered(
        "tests/plugin/test_plugin.py::test_doc_examples_are_these_tests"
    ),
    "docs/robustness.md#1": Run(
        cwd="project",
        replace=(("--seconds 600 --warmup-seconds 60", "--seconds 4 --warmup-seconds 1"),),
        expect=("soak: PASS",),
    ),
    "docs/scenarios.md#1": Run(
        cwd="project",
        files=(("my.yaml", MY_SCENARIO),),
        replace=(("my.yaml", "{tmp}/my.yaml"), ("> scenario.schema.json", "> {tmp}/schema.json")),
        expect=("scenarios/default.yaml: ok", '"valid": true', "scenario: unnamed"),
    ),
    "docs/upstream-flags.md#1": Run(files=(("sim-config.yaml", UPSTREAM_CONFIG),)),
    "docs/upstream-flags.md#2": Run(files=(("sim-config.yaml", UPSTREAM_CONFIG),), expect=("ok",)),
}


BLOCKS = {block.key: block for block in doc_blocks()}


def test_every_command_block_has_a_way() -> None:
    missing = sorted(set(BLOCKS) - set(HOW))
    gone = sorted(set(HOW) - set(BLOCKS))
    assert not missing, f"doc blocks nobody exercises (add them to HOW): {missing}"
    assert not gone, f"HOW names blocks the docs no longer have: {gone}"


@pytest.mark.parametrize("key", sorted(k for k, how in HOW.items() if isinstance(how, Covered)))
def test_covering_tests_exist(key: str) -> None:
    how = HOW[key]
    assert isinstance(how, Covered)
    path, _, function = how.test.partition("::")
    assert f"def {function}(" in (PROJECT_ROOT / path).read_text(), how.test


def test_needs_blocks_are_the_ones_bench_doc_blocks_runs() -> None:
    """``bench/doc_blocks.py --list --json`` names every block marked ``Needs``, with the same
    need, and nothing else; it exits 1 when a block it runs is gone from the docs."""
    result = subprocess.run(
        [sys.executable, DOC_BLOCKS_SCRIPT, "--list", "--json"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    runs = {row["key"]: row["needs"] for row in json.loads(result.stdout)}
    needs = {key: how.tool for key, how in HOW.items() if isinstance(how, Needs)}
    assert runs == needs, f"{DOC_BLOCKS_SCRIPT} runs {runs}; the doc-test marks {needs}"


RUNS = sorted(k for k, how in HOW.items() if isinstance(how, Run))


@pytest.mark.parametrize("key", RUNS)
def test_block_runs_as_written(key: str, tmp_path: Path, server_factory: ServerFactory) -> None:
    how, block = HOW[key], BLOCKS[key]
    assert isinstance(how, Run)
    text, transcript = block.text, []
    if any(line.startswith("$ ") for line in text.splitlines()):
        # A console transcript: run the "$ " lines, expect the others in the output.
        lines = text.splitlines()
        transcript = [line for line in lines if line.strip() and not line.startswith("$ ")]
        text = "\n".join(line[2:] for line in lines if line.startswith("$ "))
    places = {"{tmp}": str(tmp_path), "{free1}": str(free_port()), "{free2}": str(free_port())}
    for old, new in how.replace:
        for place, value in places.items():
            new = new.replace(place, value)
        text = text.replace(old, new)
    for name, content in how.files:
        (tmp_path / name).write_text(content)
    if how.server is not None:
        scenario = None if how.server == "default" else (PROJECT_ROOT / how.server).read_text()
        server = server_factory(scenario)
        text = text.replace("localhost:8000", f"127.0.0.1:{server.port}")
    text = text.replace(".venv/bin/", f"{VENV_BIN}/")
    cwd = PROJECT_ROOT if how.cwd == "project" else tmp_path
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    if block.language == "python":
        command = [sys.executable, "-c", text]
    else:
        command = ["bash", "-euo", "pipefail", "-c", text]
    returncode, stdout, output = run_block(command, cwd, env, tmp_path)
    assert returncode == 0, f"{key} failed:\n{text}\n---\n{output}"
    assert '"error"' not in stdout, f"{key} answered an error:\n{output}"
    for expected in (*how.expect, *transcript):
        assert expected in output, f"{key}: {expected!r} not in:\n{output}"


def run_block(
    command: list[str], cwd: Path, env: dict[str, str], folder: Path
) -> tuple[int, str, str]:
    """Run a block in a session of its own, its output in files (servers it leaves in the
    background must not hold a pipe open); whatever is left of the session is killed after.
    The exit status, the standard output, and both outputs together."""
    out, err = folder / "block.stdout", folder / "block.stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=stdout, stderr=stderr, start_new_session=True
        )
        try:
            returncode = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            returncode = -1
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return returncode, out.read_text(), out.read_text() + err.read_text()


def test_make_targets_of_the_quick_start() -> None:
    """``make test`` is what CI runs (``.ci/run``); ``make run`` serves the default scenario:
    both targets exist and ``make run`` names ``llmsim run``."""
    dry = subprocess.run(
        ["make", "-n", "run", "test"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    assert dry.returncode == 0, dry.stderr
    assert "llmsim run" in dry.stdout and "pytest" in dry.stdout
    assert "make test" in (PROJECT_ROOT / ".ci" / "run").read_text()


def test_bench_arguments_parse() -> None:
    """Each ``make bench ARGS=...`` line of the docs parses (``bench/run.py --check-args``)."""
    lines = [
        line
        for block in BLOCKS.values()
        for line in block.text.splitlines()
        if line.startswith("make bench")
    ]
    assert lines
    for line in lines:
        found = re.search(r'ARGS="([^"]*)"', line)
        args = found[1].split() if found else []
        result = subprocess.run(
            [sys.executable, "bench/run.py", *args, "--check-args"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"{line}: {result.stderr}"
