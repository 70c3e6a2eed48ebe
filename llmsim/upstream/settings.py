"""Settings sources composed in upstream's precedence: command line > environment > config file
> default, with pydantic-settings.

Each source is a pydantic-settings source that yields scenario data: the command line (upstream
flags, and ``llmsim run``'s own options and ``--set``), the environment (``SIM_MODEL`` for the
model and ``PYTHONHASHSEED`` for the KV-cache hash seed, each only when set and not empty, and
``LLMSIM_<SECTION>__<KEY>`` for any scenario key), and the file (an llmsim scenario, or an
upstream flat config mapped onto sections). pydantic-settings merges them, higher sources first;
a value a source sets replaces the one below it whole (a ``--fake-metrics`` object replaces the
file's, as upstream). The merged data is then validated by the scenario model, and every problem
names the source it came from: ``--max-num-seqs: engine.max-num-seqs: …``, ``$SIM_MODEL: …``,
or the file's line and column. ``POD_IP``, ``POD_NAME``, ``POD_NAMESPACE`` and
``VLLM_SERVER_DEV_MODE`` are not settings: the server reads them when it starts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from llmsim.errors import ScenarioError, ScenarioProblem
from llmsim.scenario.loader import (
    BUILTIN_FILENAME,
    InvalidScenario,
    ScenarioFile,
    builtin_scenario_text,
    error_path_and_message,
    key_path_text,
    parse_override,
    parse_scenario_file,
    read_text,
    validate_data,
)
from llmsim.scenario.model import Scenario
from llmsim.scenario.upstream import settle_dataset
from llmsim.upstream.flags import Assignment, FlagError, ParsedArgs, parse_args

MODEL_ENV = "SIM_MODEL"
HASH_SEED_ENV = "PYTHONHASHSEED"
ENV_PREFIX = "LLMSIM_"
UPSTREAM_NAME = "llm-d-inference-sim"
MODEL_REQUIRED = (
    "model parameter is empty: give --model, set SIM_MODEL, or write model: in the --config file"
)


@dataclass
class Source:
    """One source of settings above the file: its assignments, later ones winning."""

    name: str
    assignments: list[Assignment] = field(default_factory=list)


def environment_assignments(environ: Mapping[str, str]) -> list[Assignment]:
    """What the environment sets: ``SIM_MODEL``, ``PYTHONHASHSEED`` (each when not empty), and
    ``LLMSIM_<SECTION>__<KEY>=<value>`` (value read as a YAML scalar, as ``--set`` reads it)."""
    found: list[Assignment] = []
    if environ.get(MODEL_ENV):
        found.append(Assignment(("model", "name"), environ[MODEL_ENV], f"${MODEL_ENV}"))
    if environ.get(HASH_SEED_ENV):
        found.append(
            Assignment(("kv-cache", "hash-seed"), environ[HASH_SEED_ENV], f"${HASH_SEED_ENV}")
        )
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX:
            continue
        path = tuple(part.lower().replace("_", "-") for part in name[len(ENV_PREFIX) :].split("__"))
        found.append(Assignment(path, _scalar(environ[name], f"${name}"), f"${name}"))
    return found


def _scalar(text: str, source: str) -> Any:
    if not text.strip():
        return ""
    try:
        return YAML(typ="safe").load(text)
    except YAMLError as exc:
        raise ScenarioError([ScenarioProblem(source, 0, 0, "", str(exc))]) from None


def override_assignments(items: Sequence[str]) -> list[Assignment]:
    """``--set key.path=value`` items as assignments."""
    found = []
    for item in items:
        keys, value = parse_override(item)
        found.append(Assignment(keys, value, "--set"))
    return found


class _Whole:
    """A value that replaces what a lower source has at its key, even a mapping."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value


class _DataSource(PydanticBaseSettingsSource):
    """A settings source that yields scenario data."""

    def __init__(self, settings_cls: type[BaseSettings], data: Mapping[str, Any], name: str):
        super().__init__(settings_cls)
        self.data = data
        self.name = name

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)

    def __repr__(self) -> str:
        return f"<{self.name}>"


def source_data(assignments: Sequence[Assignment]) -> dict[str, Any]:
    """Assignments as nested scenario data; each value replaces whatever is below it."""
    data: dict[str, Any] = {}
    for assignment in assignments:
        node = data
        for part in assignment.path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[assignment.path[-1]] = _Whole(assignment.value)
    return data


class ComposedSettings(BaseSettings):
    """The merged scenario data of a list of sources (the scenario model validates it)."""

    model_config = SettingsConfigDict(extra="allow")


def compose(file_data: Mapping[str, Any], sources: Sequence[Source]) -> dict[str, Any]:
    """Merge ``sources`` (highest first) over ``file_data`` with pydantic-settings."""
    layers = [(source.name, source_data(source.assignments)) for source in sources]
    layers.append(("file", dict(file_data)))

    class _Settings(ComposedSettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return tuple(_DataSource(settings_cls, data, name) for name, data in layers)

    merged: dict[str, Any] = _unwrap(dict(_Settings().model_extra or {}))
    return merged


def _unwrap(value: Any) -> Any:
    if isinstance(value, _Whole):
        return value.value
    if isinstance(value, dict):
        return {key: _unwrap(item) for key, item in value.items()}
    return value


@dataclass
class Built:
    """A scenario built from sources, with what to tell the user."""

    scenario: Scenario
    notes: list[tuple[str, str]] = field(default_factory=list)
    """(level, text): level ``warning`` or ``info``."""
    flat: bool = False
    parsed: ParsedArgs = field(default_factory=ParsedArgs)


def build(
    file: ScenarioFile | None,
    sources: Sequence[Source],
    *,
    require_model: bool = False,
    name: str = UPSTREAM_NAME,
) -> Built:
    """Compose and validate; ``file`` None: nothing but the defaults below the sources."""
    base: Mapping[str, Any] = file.data if file is not None else {"version": 1, "name": name}
    data = compose(base, sources)
    notes = [(_level(note.message), str(note)) for note in (file.notes if file else [])]
    touched = [a.path[:2] == ("responses", "dataset") for s in sources for a in s.assignments]
    if any(touched) or (file is not None and file.flat):
        notes += [(note.level, str(note)) for note in settle_dataset(data)]
    problems: list[ScenarioProblem] = []
    model = data.get("model")
    if require_model and not (isinstance(model, Mapping) and model.get("name")):
        problems.append(ScenarioProblem("--model", 0, 0, "model.name", MODEL_REQUIRED))
    try:
        scenario = validate_data(data)
    except InvalidScenario as exc:
        problems += [_attributed(error, file, sources) for error in exc.errors]
    if problems:
        raise ScenarioError(problems)
    return Built(scenario, notes, flat=file is not None and file.flat)


def _level(message: str) -> str:
    return "warning" if message.startswith("warning") else "info"


def _attributed(
    error: Mapping[str, Any], file: ScenarioFile | None, sources: Sequence[Source]
) -> ScenarioProblem:
    """A validation error, named after the source of the value at fault."""
    path, message = error_path_and_message(error)
    key = key_path_text(path)
    # the value at fault was set by a source; else it holds one that was; else a sibling was
    for depth in (None, len(path), len(path) - 1):
        for source in sources:
            for assignment in reversed(source.assignments):
                assigned = assignment.path
                if depth is None:
                    covers = path[: len(assigned)] == assigned
                else:
                    covers = depth > 0 and assigned[:depth] == path[:depth]
                if covers:
                    return ScenarioProblem(assignment.source, 0, 0, key, message)
    if file is not None:
        return file.problem(error)
    return ScenarioProblem("<defaults>", 0, 0, key, message)


def config_file(path: str) -> ScenarioFile:
    """An upstream ``--config`` file (flat), or an llmsim scenario file."""
    return parse_scenario_file(read_text(path), path)


def upstream_scenario(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Built:
    """What ``llm-d-inference-sim <argv>`` serves: upstream's defaults, under the ``--config``
    file, under the environment, under the flags; the model must be given somewhere.
    Raises ``FlagError`` or ``ScenarioError``."""
    parsed = parse_args(argv)
    file = config_file(parsed.config) if parsed.config else None
    env = os.environ if environ is None else environ
    sources = [
        Source("flags", parsed.assignments),
        Source("environment", environment_assignments(env)),
    ]
    built = build(file, sources, require_model=True)
    built.notes += [(note.level, str(note)) for note in parsed.notes]
    built.parsed = parsed
    return built


def run_scenario(
    scenario: str | None,
    upstream_argv: Sequence[str] = (),
    overrides: Sequence[str] = (),
    options: Sequence[Assignment] = (),
    environ: Mapping[str, str] | None = None,
    *,
    upstream_defaults: bool = False,
) -> Built:
    """What ``llmsim run [SCENARIO] [upstream flags]`` serves: the scenario (or the ``--config``
    file, or the built-in default scenario, or — ``upstream_defaults`` — upstream's defaults),
    under the environment, under the upstream flags, under ``llmsim run``'s own options and
    ``--set``. Raises ``FlagError`` or ``ScenarioError``."""
    parsed = parse_args(upstream_argv)
    if scenario is not None and parsed.config is not None:
        raise FlagError("give a scenario file or --config, not both")
    path = scenario if scenario is not None else parsed.config
    file: ScenarioFile | None
    if path is not None:
        file = config_file(path)
    elif upstream_defaults:
        file = None
    else:
        file = parse_scenario_file(builtin_scenario_text(), BUILTIN_FILENAME)
    env = os.environ if environ is None else environ
    sources = [
        Source("--set", [*options, *override_assignments(overrides)]),
        Source("flags", parsed.assignments),
        Source("environment", environment_assignments(env)),
    ]
    built = build(file, sources)
    built.notes += [(note.level, str(note)) for note in parsed.notes]
    built.parsed = parsed
    return built
