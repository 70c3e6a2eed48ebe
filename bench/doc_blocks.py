"""Run the doc blocks the doc-test cannot: the container image, the Helm chart, the benchmarks.

tests/docs/test_doc_commands.py runs (or names the test that runs) every command block of the
docs, except the ones it marks ``Needs``: they need a container engine, a Kubernetes cluster, or
benchmark clients installed from PyPI into venvs of their own. This script runs exactly those
blocks, read from the markdown with the doc-test's own extractor (tests/docs/blocks.py), each in
a throwaway environment under ``.cache/doc-blocks/`` (``~`` of the blocks is
``.cache/doc-blocks/home``, so ``~/.venvs/<tool>`` lands there), and reports each block as
passed, partial (what this machine can run ran; the rest is named with the reason), skipped (with
the reason) or failed. The doc-test checks that the blocks it marks ``Needs`` are exactly the
ones listed here (``--list --json``).

- docs/benchmarking.md: the install block as written (``python3.12`` is found among pyenv's
  versions when it is not on PATH); each tool's block against llmsim started by the page's own
  block, with the page's tokenizer block; the tool's reported TTFT must be within 5 ms of 40 ms
  and its ITL within 1.5 ms of 8 ms (mean and median). ``127.0.0.1:8000`` becomes a free port and
  ``/tmp/bench-tokenizer`` a folder of the cache, in the blocks and in the inference-perf config.
- docs/deployment.md, image: ``make image`` with podman or docker when one answers (``podman
  info``/``docker info``), and the ``podman run`` lines against that image on free ports, each
  until ``/health`` answers. Without an engine, ``make lint-image`` still runs, and each ``podman
  run`` line's arguments are given to the image's entrypoint (``llmsim run``) outside a container,
  its paths mapped to the repository (``/etc/llmsim/scenarios/`` to ``scenarios/``, ``-v``
  mounts to their sources).
- docs/deployment.md, Helm: every ``helm install`` runs as a client-side dry run (this script
  never installs into a cluster) with the ``helm`` binary, else with Helm's own engine from the
  ``helm-python-sdk`` package; the rendered ConfigMap's scenario must pass ``llmsim validate`` and
  every ``--set``/``-f`` value must reach the manifests.

Usage: ``python bench/doc_blocks.py [--list [--json]] [--strict] [WORD ...]`` (WORD: run only
the blocks whose key or need contains it); ``make doc-blocks ARGS=...`` does the same.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.docs.blocks import DocBlock, doc_blocks  # noqa: E402
from tests.unit.test_chart import SECTION_OVERRIDES as SECTION_VALUES  # noqa: E402

CACHE = ROOT / ".cache" / "doc-blocks"
HOME = CACHE / "home"
"""``~`` of every block: the tools' venvs are ``~/.venvs/<tool>`` there."""
BIN = CACHE / "bin"
"""Put first on the blocks' PATH: ``python3.12`` when only pyenv has one, and the ``helm``
shim."""
VENV_BIN = Path(sys.executable).parent
SCENARIO = ROOT / "bench" / "benchmarking" / "scenario.yaml"
INFERENCE_PERF_CONFIG = ROOT / "bench" / "benchmarking" / "inference-perf.yaml"
DOC_TOKENIZER = "/tmp/bench-tokenizer"
DOC_ADDRESS = "127.0.0.1:8000"
TTFT_TOLERANCE_MS = 5.0
ITL_TOLERANCE_MS = 1.5
"""Chart values deep-merged over the scenario's sections (charts/llmsim/values.yaml)."""
MY_VALUES = "replicaCount: 2\nlatency:\n  time-to-first-token: 150ms\n"
"""``my-values.yaml`` of the Helm blocks."""
MY_SCENARIO = "version: 1\nmodel: {name: Qwen/Qwen2.5-1.5B-Instruct}\n"
"""``my-scenario.yaml`` of the ``podman run`` block."""


@dataclass
class Outcome:
    """What happened to one block."""

    status: str
    """passed, partial, skipped or failed."""
    detail: str
    ran: list[str] = field(default_factory=list)
    """The commands that ran, as run."""
    figures: dict[str, float] = field(default_factory=dict)


class BlockFailed(Exception):
    """A command of a block failed: the message says which and how."""


@dataclass(frozen=True)
class Plan:
    """How to run one doc block: ``needs`` is what a test machine lacks (the doc-test's
    ``Needs.tool``); ``marker`` must appear in the block (the docs still say what the plan
    runs)."""

    key: str
    needs: str
    marker: str
    run: Callable[[Context, DocBlock], Outcome]


# --- running commands ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def block_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a block: ``~`` in the cache, BIN first on PATH, pyenv still found,
    no offline switches inherited (the blocks set their own)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    real_home = Path(os.environ.get("HOME", str(Path.home())))
    if "PYENV_ROOT" not in env and (real_home / ".pyenv").is_dir():
        env["PYENV_ROOT"] = str(real_home / ".pyenv")
    env["HOME"] = str(HOME)
    env["PATH"] = os.pathsep.join((str(BIN), str(VENV_BIN), env.get("PATH", "")))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_shell(
    text: str, cwd: Path, log: Path, timeout: float, env: dict[str, str] | None = None
) -> str:
    """Run ``text`` with ``bash -euo pipefail`` in a session of its own (killed after), its
    output to ``log``; the output, or ``BlockFailed`` with its tail."""
    with log.open("w") as out:
        process = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", text],
            cwd=cwd,
            env=env or block_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = -1
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    output = log.read_text(errors="replace")
    if code != 0:
        reason = f"timed out after {timeout:.0f} s" if code == -1 else f"exit {code}"
        tail = "\n".join(output.splitlines()[-25:])
        raise BlockFailed(f"{reason}: {text.strip()}\n{tail}\n(log: {log})")
    return output


@contextlib.contextmanager
def background(
    text: str,
    cwd: Path,
    log: Path,
    port: int,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> Iterator[None]:
    """Run a server command until ``/health`` answers on ``port``; stopped (its whole session)
    on exit."""
    with log.open("w") as out:
        process = subprocess.Popen(
            ["bash", "-c", text],
            cwd=cwd,
            env=env or block_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        while not healthy(port):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
                state = f"exited {process.returncode}" if process.poll() is not None else "no"
                raise BlockFailed(f"{state} /health on {port}: {text.strip()}\n{tail}")
            time.sleep(0.2)
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def commands(block: DocBlock) -> list[str]:
    """The block's command lines, continuation lines joined, blank and comment lines dropped."""
    text = re.sub(r"\\\n\s*", " ", block.text)
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def replaced(text: str, pairs: dict[str, str]) -> str:
    for old, new in pairs.items():
        text = text.replace(old, new)
    return text


# --- what the machine has ------------------------------------------------------------------------


def python312() -> str | None:
    """A Python >= 3.12 that answers as ``python3.12``, else pyenv's or uv's (linked into BIN
    as ``python3.12``); None when there is none."""
    found = shutil.which("python3.12")
    if found and _answers(found):
        return found
    candidates: list[Path] = []
    pyenv = Path(block_env().get("PYENV_ROOT", Path.home() / ".pyenv"))
    for minor in ("3.12", "3.13", "3.14"):
        candidates += sorted((pyenv / "versions").glob(f"{minor}*/bin/python{minor}"))
    uv = shutil.which("uv")
    if uv:
        found_by_uv = subprocess.run(
            [uv, "python", "find", ">=3.12"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found_by_uv:
            candidates.append(Path(found_by_uv))
    for candidate in candidates:
        if _answers(str(candidate)):
            BIN.mkdir(parents=True, exist_ok=True)
            link = BIN / "python3.12"
            link.unlink(missing_ok=True)
            link.symlink_to(candidate)
            return str(candidate)
    return None


def _answers(python: str) -> bool:
    result = subprocess.run(
        [python, "-c", "import sys; assert sys.version_info >= (3, 12)"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def container_engine() -> tuple[str | None, str]:
    """``podman`` or ``docker`` when its engine answers, and why not otherwise."""
    reasons = []
    for name in ("podman", "docker"):
        path = shutil.which(name)
        if path is None:
            reasons.append(f"{name}: not installed")
            continue
        info = subprocess.run(
            [path, "info"], capture_output=True, text=True, timeout=30, check=False
        )
        if info.returncode == 0:
            return name, f"{name} info answered"
        version = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
        error = next(
            (line for line in info.stderr.splitlines() if "connect" in line.lower()),
            info.stderr.strip().splitlines()[-1] if info.stderr.strip() else "no answer",
        )
        reasons.append(f"{name}: {version.stdout.strip()} installed, but `{name} info` fails "
                       f"({error.strip()})")  # fmt: skip
    return None, "; ".join(reasons)


def make_image_name() -> str:
    """The image ``make image`` builds (the Makefile's IMAGE)."""
    result = subprocess.run(
        ["make", "-s", "--eval", "print-image: ; @echo $(IMAGE)", "print-image"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def cluster() -> tuple[bool, str]:
    """Whether kubectl reaches a cluster, and what it said."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return False, "kubectl not installed"
    result = subprocess.run(
        [kubectl, "cluster-info", "--request-timeout=5s"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if result.returncode == 0:
        return True, "kubectl cluster-info answered"
    lines = (result.stderr or result.stdout).strip().splitlines()
    return False, f"kubectl reaches no cluster ({lines[-1] if lines else 'no answer'})"


# --- the context: work folders, the tokenizer and llmsim for the benchmark blocks ---------------


class Context:
    """Shared by the blocks of one run: a work folder per block, and llmsim (started once, by
    docs/benchmarking.md's own blocks) for the benchmark tools."""

    def __init__(self, blocks: dict[str, DocBlock]):
        self.blocks = blocks
        self.work = CACHE / "runs" / time.strftime("%Y%m%d-%H%M%S")
        self.work.mkdir(parents=True, exist_ok=True)
        self.tokenizer = CACHE / "bench-tokenizer"
        self.port = free_port()
        self.stack = contextlib.ExitStack()
        self._serving = False
        self.places = {
            DOC_ADDRESS: f"127.0.0.1:{self.port}",
            "--port 8000": f"--port {self.port}",
            DOC_TOKENIZER: str(self.tokenizer),
            ".venv/bin/": f"{VENV_BIN}/",
        }

    def folder(self, key: str) -> Path:
        path = self.work / re.sub(r"[^A-Za-z0-9]+", "-", key)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def serve_benchmark_scenario(self) -> list[str]:
        """The tokenizer (docs/benchmarking.md#1) and llmsim serving the scenario with it
        (#3), each block as written but for the port and the tokenizer folder."""
        if self._serving:
            return []
        make = replaced(self.blocks["docs/benchmarking.md#1"].text, self.places)
        run_shell(make, ROOT, self.work / "tokenizer.log", 120)
        serve = replaced(self.blocks["docs/benchmarking.md#3"].text, self.places)
        self.stack.enter_context(background(serve, ROOT, self.work / "llmsim.log", self.port))
        self._serving = True
        return [make.strip(), serve.strip()]

    def close(self) -> None:
        self.stack.close()


# --- docs/benchmarking.md ------------------------------------------------------------------------


def scenario_latency() -> tuple[float, float]:
    """TTFT and ITL (ms) of bench/benchmarking/scenario.yaml, which the figures must match."""
    text = SCENARIO.read_text()
    found = [re.search(rf"^\s*{key}:\s*([\d.]+)ms\s*$", text, re.M) for key in (
        "time-to-first-token", "inter-token-latency")]  # fmt: skip
    if not all(found):
        raise BlockFailed(f"{SCENARIO}: no constant time-to-first-token/inter-token-latency in ms")
    ttft, itl = (float(match[1]) for match in found if match)
    return ttft, itl


def install_tools(ctx: Context, block: DocBlock) -> Outcome:
    python = python312()
    text, note = block.text, ""
    if python is None:
        text = "\n".join(line for line in text.splitlines() if "python3.12" not in line)
        note = ("inference-perf line skipped: no Python >= 3.12 (not on PATH, not in pyenv, "
                "not found by uv)")  # fmt: skip
    else:
        note = f"python3.12 is {python}"
    run_shell(text, ctx.folder(block.key), ctx.folder(block.key) / "install.log", 1800)
    status = "partial" if python is None else "passed"
    return Outcome(status, note or "installed", ran=[text.strip()])


def tool_block(
    tool: str, figures: Callable[[Path], dict[str, float]], inference_perf: bool = False
) -> Callable[[Context, DocBlock], Outcome]:
    """Run a benchmark tool's block against llmsim and check the figures it reported."""

    def run(ctx: Context, block: DocBlock) -> Outcome:
        executable = HOME / ".venvs" / tool / "bin" / tool
        if not executable.exists():
            return Outcome("skipped", f"{executable} is not installed (run the install block)")
        ran = ctx.serve_benchmark_scenario()
        folder = ctx.folder(block.key)
        if inference_perf:  # the block cds to the config's folder: a copy of it here
            config = folder / "bench" / "benchmarking" / INFERENCE_PERF_CONFIG.name
            config.parent.mkdir(parents=True, exist_ok=True)
            config.write_text(replaced(INFERENCE_PERF_CONFIG.read_text(), ctx.places))
        text = replaced(block.text, ctx.places)
        output = run_shell(text, folder, folder / f"{tool}.log", 600)
        ran.append(text.strip())
        try:
            found = figures(folder)
        except (OSError, KeyError, IndexError, ValueError) as exc:
            tail = "\n".join(output.splitlines()[-15:])
            raise BlockFailed(
                f"{tool} wrote no figures where the docs say ({exc!r})\n{tail}"
            ) from None
        return check_figures(found, ran)

    return run


def check_figures(found: dict[str, float], ran: list[str]) -> Outcome:
    ttft, itl = scenario_latency()
    wrong = []
    for name, value in found.items():
        target, tolerance = (ttft, TTFT_TOLERANCE_MS) if "TTFT" in name else (itl, ITL_TOLERANCE_MS)
        if abs(value - target) > tolerance:
            wrong.append(f"{name} {value:.2f} ms is not within {tolerance} ms of {target} ms")
    shown = ", ".join(f"{name} {value:.2f}" for name, value in found.items())
    if wrong:
        return Outcome("failed", "; ".join(wrong) + f" ({shown} ms)", ran, found)
    return Outcome("passed", f"{shown} ms", ran, found)


def guidellm_figures(folder: Path) -> dict[str, float]:
    metrics = json.loads((folder / "guidellm.json").read_text())["benchmarks"][0]["metrics"]
    ttft = metrics["time_to_first_token_ms"]["successful"]
    itl = metrics["inter_token_latency_ms"]["successful"]
    return {
        "TTFT mean": ttft["mean"],
        "TTFT median": ttft["median"],
        "ITL mean": itl["mean"],
        "ITL median": itl["median"],
    }


def aiperf_figures(folder: Path) -> dict[str, float]:
    data = json.loads((folder / "aiperf-artifacts" / "profile_export_aiperf.json").read_text())
    ttft, itl = data["time_to_first_token"], data["inter_token_latency"]
    return {
        "TTFT avg": ttft["avg"],
        "TTFT p50": ttft["p50"],
        "ITL avg": itl["avg"],
        "ITL p50": itl["p50"],
    }


def inference_perf_figures(folder: Path) -> dict[str, float]:
    reports = folder / "bench" / "benchmarking" / "reports-inference-perf"
    (summary,) = sorted(reports.rglob("summary_lifecycle_metrics.json"))
    latency = json.loads(summary.read_text())["successes"]["latency"]
    ttft, itl = latency["time_to_first_token"], latency["inter_token_latency"]
    return {  # seconds in the report
        "TTFT mean": ttft["mean"] * 1000,
        "TTFT median": ttft["median"] * 1000,
        "ITL mean": itl["mean"] * 1000,
        "ITL median": itl["median"] * 1000,
    }


# --- docs/deployment.md: the image ---------------------------------------------------------------


def build_image(ctx: Context, block: DocBlock) -> Outcome:
    engine, why = container_engine()
    folder, ran, results = ctx.folder(block.key), [], []
    for n, line in enumerate(commands(block)):
        if line.startswith("make image") and engine is None:
            results.append(f"not run: {line.split('#')[0].strip()}")
            continue
        run_shell(line, ROOT, folder / f"line{n}.log", 1800)
        ran.append(line)
        results.append(f"ran: {line.split('#')[0].strip()}")
    if engine is None:
        return Outcome("partial", f"no container engine ({why}); " + "; ".join(results), ran)
    return Outcome("passed", f"with {engine}; " + "; ".join(results), ran)


@dataclass(frozen=True)
class ContainerRun:
    """One ``podman run`` line: its options, image and the arguments to the entrypoint."""

    ports: list[tuple[str, str]]
    volumes: list[tuple[str, str]]
    image: str
    args: list[str]


def parse_run(line: str) -> ContainerRun:
    words = shlex.split(line)
    if words[:2] not in (["podman", "run"], ["docker", "run"]):
        raise BlockFailed(f"not a container run line: {line}")
    ports, volumes, rest = [], [], words[2:]
    while rest and rest[0].startswith("-"):
        option = rest.pop(0)
        if option in ("-p", "--publish"):
            host, _, inside = rest.pop(0).rpartition(":")
            ports.append((host, inside))
        elif option in ("-v", "--volume"):
            source, target = rest.pop(0).split(":")[:2]
            volumes.append((source, target))
        elif option in ("-e", "--env", "--name"):
            rest.pop(0)
        elif option != "--rm" and "=" not in option:
            raise BlockFailed(f"{line}: option {option} not understood by {__file__}")
    if not rest:
        raise BlockFailed(f"{line}: no image")
    return ContainerRun(ports, volumes, rest[0], rest[1:])


def run_image(ctx: Context, block: DocBlock) -> Outcome:
    engine, why = container_engine()
    folder = ctx.folder(block.key)
    (folder / "my-scenario.yaml").write_text(MY_SCENARIO)
    image, ran, notes = make_image_name(), [], []
    for n, line in enumerate(commands(block)):
        run = parse_run(line)
        if run.image != image:
            raise BlockFailed(f"{line}: image {run.image}, but `make image` builds {image}")
        if engine is not None:
            port = free_port()
            command = line
            for host, inside in run.ports:
                command = command.replace(f"-p {host}:{inside}", f"-p {port}:{inside}")
            command = re.sub(r"^podman ", f"{engine} ", command)
            with background(command, folder, folder / f"line{n}.log", port, timeout=120):
                ran.append(command)
            continue
        # No engine: the image's entrypoint, `llmsim run`, outside a container.
        port = free_port()
        args = [_host_path(arg, run, folder) for arg in run.args] or ["--port", "8000"]
        args = [str(port) if i and args[i - 1] == "--port" else a for i, a in enumerate(args)]
        command = shlex.join([str(VENV_BIN / "llmsim"), "run", *args, "--host", "127.0.0.1"])
        with background(command, folder, folder / f"line{n}.log", port):
            ran.append(command)
        notes.append(f"{shlex.join(run.args) or '(default command)'}: served /health")
    if engine is None:
        detail = (f"no container engine ({why}); each line's arguments given to the image's "
                  f"entrypoint `llmsim run` outside a container, its paths mapped to the "
                  f"repository: " + "; ".join(notes))  # fmt: skip
        return Outcome("partial", detail, ran)
    return Outcome("passed", f"with {engine}: every line served /health", ran)


def _host_path(arg: str, run: ContainerRun, folder: Path) -> str:
    """A path inside the image as the repository (or the block's folder) has it."""
    if arg.startswith("/etc/llmsim/scenarios/"):
        return str(ROOT / "scenarios" / arg.removeprefix("/etc/llmsim/scenarios/"))
    for source, target in run.volumes:
        if arg == target:
            return str((folder / source).resolve())
    return arg


# --- docs/deployment.md: the Helm chart ----------------------------------------------------------


def helm_blocks(ctx: Context, block: DocBlock) -> Outcome:
    folder = ctx.folder(block.key)
    (folder / "my-values.yaml").write_text(MY_VALUES)
    (folder / "charts").mkdir(exist_ok=True)
    link = folder / "charts" / "llmsim"
    if not link.exists():
        link.symlink_to(ROOT / "charts" / "llmsim")
    shim = BIN / "helm"
    BIN.mkdir(parents=True, exist_ok=True)
    real = _real_helm()
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} '
                    f'{shlex.quote(str(Path(__file__).resolve()))} --helm "$@"\n')  # fmt: skip
    shim.chmod(0o755)
    reached, why = cluster()
    if reached:
        why += ", but this script never installs into a cluster"
    ran = []
    for n, line in enumerate(commands(block)):
        output = run_shell(line, folder, folder / f"line{n}.log", 300)
        ran.append(line)
        if "checked:" not in output:
            raise BlockFailed(f"{line}: the helm shim printed no check\n{output[-2000:]}")
    engine = f"the helm binary ({real})" if real else "Helm's engine from helm-python-sdk"
    detail = (
        f"every helm install rendered by {engine} as `helm install --dry-run=client` (helm "
        f"template alike); manifests parsed, the ConfigMap's scenario passes llmsim validate, "
        f"every --set/-f value reaches them. Not installed: "
        f"{'no helm binary; ' if not real else ''}{why}"
    )
    return Outcome("partial", detail, ran)


def _real_helm() -> str | None:
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != str(BIN))
    return shutil.which("helm", path=path)


def helm_shim(argv: list[str]) -> int:
    """``helm install|template NAME CHART [--set K=V]... [-f FILE]...``: the manifests as
    ``helm template`` prints them, checked; installs are client-side dry runs."""
    action, name, chart, *options = argv
    if action not in ("install", "template"):
        print(f"helm shim of {__file__}: only install and template", file=sys.stderr)
        return 2
    sets, files = [], []
    while options:
        option = options.pop(0)
        if option == "--set":
            sets.append(options.pop(0))
        elif option in ("-f", "--values"):
            files.append(options.pop(0))
        else:
            print(f"helm shim: option {option} not understood", file=sys.stderr)
            return 2
    real = _real_helm()
    if real:
        command = [real, "template", name, chart]
        for expression in sets:
            command += ["--set", expression]
        for path in files:
            command += ["-f", path]
        manifest = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        values = _values(sets, files)
    else:
        import helm_python

        values = _values(sets, files)
        with helm_python.Config(storage_driver="memory", namespace="default") as config:
            release = config.install(chart, name, values, dry_run="client")
        manifest = str(release["manifest"])
    print(manifest)
    try:
        print(f"checked: {_check_manifest(manifest, values)}")
    except BlockFailed as exc:
        print(f"helm shim: {exc}", file=sys.stderr)
        return 1
    return 0


def _values(sets: list[str], files: list[str]) -> dict[str, Any]:
    """The user-supplied values: ``-f`` files in order, then ``--set`` (as Helm merges them)."""
    import helm_python

    values: dict[str, Any] = {}
    for path in files:
        _merge(values, helm_python.values_from_yaml(Path(path).read_text()))
    for expression in sets:
        _merge(values, helm_python.parse_set_string(expression))
    return values


def _merge(into: dict[str, Any], given: dict[str, Any]) -> None:
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _leaves(
    values: dict[str, Any], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in values.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _check_manifest(manifest: str, values: dict[str, Any]) -> str:
    """Parse the manifests, validate the ConfigMap's scenario with ``llmsim validate``, and
    find every given value in them; a summary, or ``BlockFailed``."""
    from ruamel.yaml import YAML

    docs = [doc for doc in YAML(typ="safe").load_all(manifest) if doc]
    kinds = {doc["kind"]: doc for doc in docs}
    config_text = kinds["ConfigMap"]["data"]["scenario.yaml"]
    scenario: dict[str, Any] = YAML(typ="safe").load(config_text)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "scenario.yaml"
        path.write_text(config_text)
        result = subprocess.run(
            [sys.executable, "-m", "llmsim", "validate", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
    if result.returncode != 0:
        raise BlockFailed(
            f"the rendered scenario does not validate:\n{result.stdout}{result.stderr}"
        )
    deployment = kinds["Deployment"]
    for path_, value in _leaves(values):
        head, *rest = path_
        if head in SECTION_VALUES:
            found: Any = scenario.get(SECTION_VALUES[head], {})
            for part in rest:
                found = found.get(part) if isinstance(found, dict) else None
            if str(found).lower() != str(value).lower() and not (found is None and value == ""):
                raise BlockFailed(f"{'.'.join(path_)}={value!r}: the scenario has {found!r}")
        elif path_ == ("image", "repository"):
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            if not container["image"].startswith(f"{value}:"):
                raise BlockFailed(f"image.repository={value}: the pod runs {container['image']}")
        elif path_ == ("replicaCount",):
            if deployment["spec"]["replicas"] != value:
                raise BlockFailed(f"replicaCount={value}: {deployment['spec']['replicas']}")
        else:
            raise BlockFailed(f"{'.'.join(path_)}: no check for this value in {__file__}")
    return f"{len(docs)} manifests ({', '.join(sorted(kinds))}), scenario valid, values found"


VLLM = "vLLM on a GPU + OTLP collector"


def needs_vllm(ctx: Context, block: DocBlock) -> Outcome:
    """Collecting traces from a real vLLM: nothing here can run it. What those blocks
    produce (vLLM 0.11's OTLP/JSON request spans) is what ``llmsim calibrate`` reads; the
    suite fits the two recorded runs in ``../shared/data/vllm-ground-truth/``."""
    if shutil.which("vllm") is None:
        return Outcome("skipped", "needs vLLM on a GPU and an OTLP collector (not here)")
    return Outcome("skipped", "vllm is installed, but this script does not start a GPU server")


# --- the blocks this script runs -----------------------------------------------------------------

PLANS = (
    Plan("docs/benchmarking.md#4", "pip venvs", "pip install guidellm", install_tools),
    Plan(
        "docs/benchmarking.md#5",
        "guidellm",
        "guidellm run",
        tool_block("guidellm", guidellm_figures),
    ),
    Plan(
        "docs/benchmarking.md#6", "aiperf", "aiperf profile", tool_block("aiperf", aiperf_figures)
    ),
    Plan(
        "docs/benchmarking.md#7",
        "inference-perf",
        "inference-perf --config_file",
        tool_block("inference-perf", inference_perf_figures, inference_perf=True),
    ),
    Plan("docs/calibration.md#1", VLLM, "otel/opentelemetry-collector-contrib", needs_vllm),
    Plan("docs/calibration.md#2", VLLM, "--otlp-traces-endpoint", needs_vllm),
    Plan("docs/deployment.md#1", "podman", "make image", build_image),
    Plan("docs/deployment.md#2", "podman", "podman run", run_image),
    Plan("docs/deployment.md#3", "helm + cluster", "helm install sim charts/llmsim", helm_blocks),
    Plan("docs/deployment.md#4", "helm + cluster", "helm install fast charts/llmsim", helm_blocks),
)


def listing(blocks: dict[str, DocBlock]) -> list[dict[str, Any]]:
    """Each plan, and whether the docs still have its block."""
    return [
        {
            "key": plan.key,
            "needs": plan.needs,
            "found": plan.key in blocks and plan.marker in blocks[plan.key].text,
        }
        for plan in PLANS
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("words", nargs="*", help="run only blocks whose key or need has one")
    parser.add_argument("--list", action="store_true", help="list the blocks, run nothing")
    parser.add_argument("--json", action="store_true", help="with --list: as JSON")
    parser.add_argument("--strict", action="store_true", help="exit 1 on partial or skipped too")
    if sys.argv[1:2] == ["--helm"]:
        return helm_shim(sys.argv[2:])
    args = parser.parse_args()
    blocks = {block.key: block for block in doc_blocks()}
    if args.list:
        rows = listing(blocks)
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                print(f"{row['key']:26} {row['needs']:16} {'' if row['found'] else 'MISSING'}")
        return 0 if all(row["found"] for row in rows) else 1
    chosen = [
        plan
        for plan in PLANS
        if not args.words or any(word in plan.key or word in plan.needs for word in args.words)
    ]
    ctx = Context(blocks)
    outcomes: dict[str, Outcome] = {}
    try:
        for plan in chosen:
            block = blocks.get(plan.key)
            if block is None or plan.marker not in block.text:
                outcomes[plan.key] = Outcome(
                    "failed", f"the docs have no block with {plan.marker!r}"
                )
                continue
            print(f"== {plan.key} ({plan.needs})", flush=True)
            started = time.monotonic()
            try:
                outcome = plan.run(ctx, block)
            except BlockFailed as exc:
                outcome = Outcome("failed", str(exc))
            outcomes[plan.key] = outcome
            print(f"   {outcome.status} in {time.monotonic() - started:.0f} s: {outcome.detail}",
                  flush=True)  # fmt: skip
    finally:
        ctx.close()
    report = {key: outcome.__dict__ for key, outcome in outcomes.items()}
    (ctx.work / "report.json").write_text(json.dumps(report, indent=2))
    print(f"\nReport ({ctx.work / 'report.json'}):")
    for key, outcome in outcomes.items():
        print(f"  {outcome.status:8} {key}")
    bad = {"failed"} | ({"partial", "skipped"} if args.strict else set())
    return 1 if any(outcome.status in bad for outcome in outcomes.values()) else 0


if __name__ == "__main__":
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE.parent / ".gitignore").write_text("*\n")
    sys.exit(main())
