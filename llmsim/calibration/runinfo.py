"""What is known of the vLLM server a trace file comes from, read from the files beside it.

A traced run often keeps its settings next to ``traces.json``: an ``exp-config.yaml`` (model,
``max_num_batched_tokens``, ``max_num_seqs``, ``tensor_parallelism``) and the server's log,
``vllm.log``, whose start-up lines give the version, the token budget, the KV-cache size and the
non-default arguments. ``calibrate`` takes its defaults from here; flags override them. Only
reading, never guessing: a value not found stays None.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_FILE = "exp-config.yaml"
LOG_FILE = "vllm.log"

_VERSION = re.compile(r"Initializing a V1 LLM engine \(v([^)\s]+)\)")
_BUDGET = re.compile(r"max_num_batched_tokens=(\d+)")
_KV_TOKENS = re.compile(r"GPU KV cache size: ([\d,]+) tokens")
_SERVED = re.compile(r"served_model_name=([^,\s]+)")
_TP = re.compile(r"tensor_parallel_size=(\d+)")
_NON_DEFAULT = re.compile(r"non-default args: (\{.*\})\s*$")


@dataclass(slots=True)
class RunInfo:
    """The traced server's settings, as far as the files beside the trace tell."""

    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    model: str | None = None
    tensor_parallel_size: int | None = None
    vllm_version: str | None = None
    kv_cache_tokens: int | None = None
    sources: list[str] = field(default_factory=list)
    """The files the values were read from."""


def read_run_info(trace: Path) -> RunInfo:
    """The settings found beside ``trace`` (``exp-config.yaml`` first, then ``vllm.log``)."""
    info = RunInfo()
    _from_config(trace.parent / CONFIG_FILE, info)
    _from_log(trace.parent / LOG_FILE, info)
    return info


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _from_config(path: Path, info: RunInfo) -> None:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    if not path.is_file():
        return
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YAMLError):
        return
    if not isinstance(data, Mapping):
        return
    info.sources.append(str(path))
    info.max_num_batched_tokens = _integer(data.get("max_num_batched_tokens"))
    info.max_num_seqs = _integer(data.get("max_num_seqs"))
    model = data.get("model")
    info.model = model if isinstance(model, str) and model else None
    info.tensor_parallel_size = _integer(
        data.get("tensor_parallelism", data.get("tensor_parallel_size"))
    )


def _from_log(path: Path, info: RunInfo) -> None:
    if not path.is_file():
        return
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    found = False

    def first(pattern: re.Pattern[str]) -> str | None:
        nonlocal found
        match = pattern.search(text)
        if match is None:
            return None
        found = True
        return match.group(1)

    arguments: Mapping[str, Any] = {}
    for line in text.splitlines():
        match = _NON_DEFAULT.search(line)
        if match:
            try:
                parsed = ast.literal_eval(match.group(1))
            except (ValueError, SyntaxError):
                break
            if isinstance(parsed, Mapping):
                arguments = parsed
                found = True
            break
    version = first(_VERSION)
    budget = first(_BUDGET)
    kv_tokens = first(_KV_TOKENS)
    served = first(_SERVED)
    tp = first(_TP)
    if info.vllm_version is None:
        info.vllm_version = version
    if info.max_num_batched_tokens is None and budget is not None:
        info.max_num_batched_tokens = int(budget)
    if info.max_num_seqs is None:
        info.max_num_seqs = _integer(arguments.get("max_num_seqs"))
    if info.kv_cache_tokens is None and kv_tokens is not None:
        info.kv_cache_tokens = int(kv_tokens.replace(",", ""))
    if info.model is None:
        names = arguments.get("served_model_name")
        if isinstance(names, list) and names and isinstance(names[0], str):
            info.model = names[0]
        elif served is not None:
            info.model = served
    if info.tensor_parallel_size is None and tp is not None:
        info.tensor_parallel_size = int(tp)
    if found:
        info.sources.append(str(path))
