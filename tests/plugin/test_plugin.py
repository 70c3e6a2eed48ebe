"""The ``llmsim_server`` fixture and ``llmsim.serve``, used exactly as docs/pytest-plugin.md shows.

The fixture comes from the installed ``pytest11`` entry point, not from a conftest. The first
tests are the documentation's examples, statement for statement (a test keeps them in step);
the rest cover what the examples leave out: string paths and TOML, teardown, a scenario the
simulator rejects, and the scope option.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from openai import OpenAI

import llmsim
from llmsim.testing import (
    AdminConfigError,
    SimulatorFactory,
    SimulatorHandle,
    SimulatorStartError,
    serve,
)

SCENARIOS = Path(__file__).parent / "scenarios"
DOC = Path(__file__).resolve().parents[2] / "docs" / "pytest-plugin.md"


# --- The documentation's examples ----------------------------------------------------------


def test_chat_completion(llmsim_server: SimulatorFactory) -> None:
    sim = llmsim_server()  # the built-in default scenario
    client = OpenAI(base_url=sim.openai_base_url, api_key="unused")
    reply = client.chat.completions.create(
        model="Qwen/Qwen2.5-1.5B-Instruct",
        messages=[{"role": "user", "content": "Hello"}],
        max_tokens=8,
    )
    assert reply.choices[0].message.content


def test_scenario_from_a_file(llmsim_server: SimulatorFactory) -> None:
    sim = llmsim_server(SCENARIOS / "fast.yaml")
    assert sim.config()["model"] == "fast-model"


def test_scenario_as_data(llmsim_server: SimulatorFactory) -> None:
    sim = llmsim_server(
        {
            "version": 1,
            "model": {"name": "tiny"},
            "latency": {"time-to-first-token": "5ms", "inter-token-latency": "1ms"},
        }
    )
    assert sim.config()["time-to-first-token"] == "5ms"


def test_scenario_as_yaml_text(llmsim_server: SimulatorFactory) -> None:
    sim = llmsim_server(
        """
        version: 1
        model: {name: tiny}
        engine: {max-num-seqs: 2}
        """
    )
    assert sim.config()["max-num-seqs"] == 2


def test_metrics_follow_requests(llmsim_server: SimulatorFactory) -> None:
    sim = llmsim_server({"version": 1, "model": {"name": "tiny"}})
    running = sim.metrics()["vllm:num_requests_running"]
    assert running.samples[0].value == 0
    client = OpenAI(base_url=sim.openai_base_url, api_key="unused")
    client.completions.create(model="tiny", prompt="Hello", max_tokens=4)
    success = sim.metrics()["vllm:request_success"]
    assert sum(sample.value for sample in success.samples) == 1


def test_runtime_reconfiguration(llmsim_server: SimulatorFactory) -> None:
    sim = llmsim_server("version: 1\nmetrics: {fake-metrics: {running-requests: 3}}\n")
    sim.update_config({"fake-metrics": {"running-requests": 7}})
    assert sim.metrics()["vllm:num_requests_running"].samples[0].value == 7
    with pytest.raises(AdminConfigError, match="not admin-configurable"):
        sim.update_config({"max-num-seqs": 1})


def test_serve_outside_pytest_fixtures() -> None:
    with llmsim.serve({"version": 1, "model": {"name": "tiny"}}) as sim:
        client = OpenAI(base_url=sim.openai_base_url, api_key="unused")
        assert client.models.list().data[0].id == "tiny"
    assert not sim.running


def test_doc_examples_are_these_tests() -> None:
    """Every python block of the doc is in this module: its imports among this module's, each
    other statement (comments and layout aside) somewhere in it."""
    module = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    imported = _imports(module)
    statements = {ast.dump(node) for node in ast.walk(module) if isinstance(node, ast.stmt)}
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 7
    for block in blocks:
        example = ast.parse(block)
        assert _imports(example) <= imported, block
        for node in example.body:
            if not isinstance(node, ast.Import | ast.ImportFrom):
                assert ast.dump(node) in statements, f"not in this module:\n{ast.unparse(node)}"


# --- Beyond the examples --------------------------------------------------------------------


def test_handle_urls_point_at_its_loopback_port(llmsim_server: SimulatorFactory) -> None:
    sim = llmsim_server(str(SCENARIOS / "fast.yaml"))  # a str path, as well as a Path
    assert sim.base_url == f"http://127.0.0.1:{sim.port}"
    assert sim.openai_base_url == f"http://127.0.0.1:{sim.port}/v1"
    assert sim.running
    assert f"pid={sim.pid}" in repr(sim)


def test_toml_scenario_file(llmsim_server: SimulatorFactory) -> None:
    sim = llmsim_server(SCENARIOS / "fast.toml")
    assert sim.config()["scenario"] == "fast-toml"


def test_one_line_yaml_starting_with_version(llmsim_server: SimulatorFactory) -> None:
    sim = llmsim_server("version: 1")  # YAML text, not a file named "version: 1"
    assert sim.scenario_path is not None
    assert sim.scenario_path.read_text() == "version: 1"


def test_missing_scenario_file_fails_before_starting(llmsim_server: SimulatorFactory) -> None:
    with pytest.raises(FileNotFoundError, match=r"no-such\.yaml"):
        llmsim_server(SCENARIOS / "no-such.yaml")


def test_rejected_scenario_raises_with_the_simulators_message(
    llmsim_server: SimulatorFactory,
) -> None:
    with pytest.raises(SimulatorStartError, match="max-num-seqs") as raised:
        llmsim_server({"version": 1, "engine": {"max-num-seqs": "many"}})
    assert "exited with 1" in str(raised.value)


def test_a_latency_update_applies_to_the_next_request(llmsim_server: SimulatorFactory) -> None:
    sim = llmsim_server(SCENARIOS / "fast.yaml")
    client = OpenAI(base_url=sim.openai_base_url, api_key="unused")
    assert _seconds_to_complete(client) < 0.4
    view = sim.update_config({"time-to-first-token": "600ms"})
    assert view["time-to-first-token"] == "600ms"
    assert sim.config()["time-to-first-token"] == "600ms"
    assert _seconds_to_complete(client) >= 0.55


def test_a_rejected_update_carries_status_and_message(llmsim_server: SimulatorFactory) -> None:
    sim = llmsim_server(SCENARIOS / "fast.yaml")
    with pytest.raises(AdminConfigError) as raised:
        sim.update_config({"fake-metrics": {"running-requests": 1}})
    assert raised.value.status == 400
    assert raised.value.message == (
        "the simulator is reporting real metrics; fake metrics cannot be updated"
    )
    assert sim.config()["time-to-first-token"] == "5ms"


def test_stop_ends_the_process_and_may_be_repeated(llmsim_server: SimulatorFactory) -> None:
    sim = llmsim_server(SCENARIOS / "fast.yaml")
    sim.stop()
    assert sim.process.returncode is not None
    assert not _alive(sim.pid)
    sim.stop()


def test_serve_stops_the_simulator_when_the_block_raises() -> None:
    handle: SimulatorHandle | None = None
    with pytest.raises(KeyError), serve(SCENARIOS / "fast.yaml") as sim:
        handle = sim
        raise KeyError("boom")
    assert handle is not None
    assert not handle.running
    assert handle.scenario_path == (SCENARIOS / "fast.yaml").resolve()


def test_serve_removes_the_scenario_file_it_wrote() -> None:
    with serve("version: 1\nmodel: {name: tiny}\n") as sim:
        written = sim.scenario_path
        assert written is not None
        assert written.is_file()
    assert not written.exists()


def test_every_simulator_stops_at_teardown(pytester_dir: Path) -> None:
    """A separate pytest run (the plugin comes from the entry point there too) starts servers in
    two tests; once it is over, none of their processes is left."""
    (pytester_dir / "test_inner.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path

            SCENARIO = {str(SCENARIOS / "fast.yaml")!r}
            PIDS = Path(__file__).with_name("pids.txt")


            def test_two_servers(llmsim_server):
                first, second = llmsim_server(SCENARIO), llmsim_server({{"version": 1}})
                assert first.running and second.running and first.port != second.port
                PIDS.write_text(f"{{first.pid}}\\n{{second.pid}}\\n")


            def test_default(llmsim_server):
                sim = llmsim_server()
                with PIDS.open("a") as pids:
                    pids.write(f"{{sim.pid}}\\n")
            """
        )
    )
    pids = _run_inner_pytest(pytester_dir)
    assert len(pids) == 3


def test_the_scope_option_shares_simulators(pytester_dir: Path) -> None:
    """With ``llmsim_server_scope = module`` a simulator outlives the test that started it and
    stops with the module."""
    (pytester_dir / "pytest.ini").write_text("[pytest]\nllmsim_server_scope = module\n")
    (pytester_dir / "test_inner.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path

            PIDS = Path(__file__).with_name("pids.txt")
            STARTED = []


            def test_start(llmsim_server):
                STARTED.append(llmsim_server({str(SCENARIOS / "fast.yaml")!r}))
                PIDS.write_text(f"{{STARTED[0].pid}}\\n")


            def test_still_running(llmsim_server):
                assert STARTED[0].running
            """
        )
    )
    assert len(_run_inner_pytest(pytester_dir)) == 1


def test_a_bad_scope_option_is_a_usage_error(pytester_dir: Path) -> None:
    (pytester_dir / "pytest.ini").write_text("[pytest]\nllmsim_server_scope = forever\n")
    (pytester_dir / "test_inner.py").write_text("def test_x(llmsim_server):\n    pass\n")
    result = _pytest(pytester_dir)
    assert result.returncode != 0
    assert "llmsim_server_scope = 'forever'" in result.stdout + result.stderr


# --- Helpers --------------------------------------------------------------------------------


@pytest.fixture
def pytester_dir(tmp_path: Path) -> Path:
    """An empty folder for a separate pytest run (its own rootdir: no project config)."""
    folder = tmp_path / "inner"
    folder.mkdir()
    return folder


def _pytest(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _run_inner_pytest(folder: Path) -> list[int]:
    """Run pytest in ``folder``; it must pass, and every pid it wrote must be gone."""
    result = _pytest(folder)
    pids = [int(line) for line in (folder / "pids.txt").read_text().split()]
    survivors = [pid for pid in pids if _alive(pid)]
    for pid in survivors:  # do not leak a server when the test fails
        os.kill(pid, 9)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not survivors
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _seconds_to_complete(client: OpenAI) -> float:
    start = time.monotonic()
    client.completions.create(model="fast-model", prompt="Hi", max_tokens=2)
    return time.monotonic() - start


def _imports(module: ast.Module) -> set[tuple[str, str]]:
    """The (module, name) pairs imported at the top level of ``module``."""
    found: set[tuple[str, str]] = set()
    for node in module.body:
        if isinstance(node, ast.Import):
            found |= {(alias.name, "") for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            found |= {(node.module or "", alias.name) for alias in node.names}
    return found
