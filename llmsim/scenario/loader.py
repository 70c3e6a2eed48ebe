"""Loading scenario files (YAML or TOML) into a validated ``Scenario``.

Every problem is reported as ``file:line:col: key.path: message``: YAML positions come from
ruamel.yaml's round-trip loader, TOML positions from a scan of the source for the key. Unknown
keys get a "did you mean" hint. Overrides (``--set key.path=value``) are applied to the raw data
before validation, so they are checked by the same rules. An upstream flat config file (no
``version``, upstream's flat keys) is detected and mapped onto sections; its problems are
located at its own keys.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from llmsim.errors import ScenarioError, ScenarioProblem
from llmsim.scenario.checks import cross_section_problems
from llmsim.scenario.distributions import DISTRIBUTION_TAGS
from llmsim.scenario.flat_file import is_flat, origin_of, unflatten
from llmsim.scenario.model import Scenario

BUILTIN_DEFAULT = "default.yaml"
OVERRIDE_SOURCE = "--set"


def builtin_scenario_text() -> str:
    """The text of the built-in default scenario shipped inside the package."""
    return (resources.files("llmsim") / "scenarios" / BUILTIN_DEFAULT).read_text(encoding="utf-8")


BUILTIN_FILENAME = f"<builtin:{BUILTIN_DEFAULT}>"


def load_scenario(path: str | Path | None, overrides: Sequence[str] = ()) -> Scenario:
    """Load and validate a scenario file (``None``: the built-in default), then apply overrides.
    An upstream flat config file is mapped onto sections."""
    if path is None:
        return load_scenario_text(builtin_scenario_text(), BUILTIN_FILENAME, overrides)
    return read_scenario(path, overrides).scenario


def load_scenario_text(text: str, filename: str, overrides: Sequence[str] = ()) -> Scenario:
    """Parse ``text`` (TOML when ``filename`` ends in .toml, else YAML) and validate it."""
    return read_scenario_text(text, filename, overrides).scenario


@dataclass
class LoadedScenario:
    """A validated scenario, whether its file was an upstream flat config, and what to tell
    the user about it (warnings and notes, located like problems)."""

    scenario: Scenario
    flat: bool = False
    notes: list[ScenarioProblem] = dataclasses.field(default_factory=list)


def read_scenario(path: str | Path, overrides: Sequence[str] = ()) -> LoadedScenario:
    """``load_scenario`` of a file, with what ``LoadedScenario`` adds."""
    return read_scenario_text(read_text(path), str(path), overrides)


def read_text(path: str | Path) -> str:
    """The text of a scenario file; a ``ScenarioError`` when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([ScenarioProblem(str(path), 1, 1, "", f"cannot read: {exc}")]) from exc


def read_scenario_text(text: str, filename: str, overrides: Sequence[str] = ()) -> LoadedScenario:
    """``load_scenario_text``, with what ``LoadedScenario`` adds."""
    source = parse_scenario_file(text, filename)
    overridden = [_apply_override(source.data, item) for item in overrides]
    try:
        scenario = validate_data(source.data)
    except InvalidScenario as exc:
        problems = [_problem(error, source, overridden) for error in exc.errors]
        problems.sort(key=lambda p: (p.file == OVERRIDE_SOURCE, p.line, p.col))
        raise ScenarioError(problems) from None
    return LoadedScenario(scenario, source.flat, source.notes)


Locate = Callable[[Sequence[str | int], bool], tuple[int, int, str]]
"""(key path, at the key rather than its value) -> (line, column, key as the file writes it)."""


@dataclass
class ScenarioFile:
    """A parsed scenario file as scenario data (an upstream flat config already mapped onto
    sections), and how to locate a key path in it."""

    filename: str
    data: MutableMapping[str, Any]
    locate: Locate
    flat: bool = False
    notes: list[ScenarioProblem] = dataclasses.field(default_factory=list)

    def problem(self, error: Mapping[str, Any]) -> ScenarioProblem:
        """A validation error of this file's data, located in the file."""
        path, message = error_path_and_message(error)
        line, col, key = self.locate(path, error["type"] == "extra_forbidden")
        return ScenarioProblem(self.filename, line, col, key, message)


def parse_scenario_file(text: str, filename: str) -> ScenarioFile:
    """Parse ``text`` (TOML when ``filename`` ends in .toml, else YAML); an upstream flat
    config is detected and mapped onto sections."""
    is_toml = filename.endswith(".toml")
    data = _parse_toml(text, filename) if is_toml else _parse_yaml(text, filename)
    if not isinstance(data, MutableMapping):
        raise ScenarioError([ScenarioProblem(filename, 1, 1, "", "a scenario must be a mapping")])
    locator = _TomlLocator(text) if is_toml else _YamlLocator(data)
    if not is_flat(data):

        def locate(path: Sequence[str | int], at_key: bool) -> tuple[int, int, str]:
            return (*locator.locate(path, at_key), _key_path(path))

        return ScenarioFile(filename, data, locate)
    return _flat_file(data, filename, locator)


def _flat_file(
    flat: Mapping[str, Any], filename: str, locator: _YamlLocator | _TomlLocator
) -> ScenarioFile:
    mapped = unflatten(flat, filename)

    def at(position: Sequence[str | int], at_key: bool = True) -> tuple[int, int]:
        return locator.locate(position, at_key)

    if mapped.problems:
        raise ScenarioError(
            [
                ScenarioProblem(filename, *at(problem.position), problem.key, problem.message)
                for problem in mapped.problems
            ]
        )

    def locate(path: Sequence[str | int], at_key: bool) -> tuple[int, int, str]:
        found = origin_of(tuple(path), mapped.origins)
        if found is None:
            return (1, 1, _key_path(path))
        key, position, rest = found
        return (*at((*position, *rest), at_key), _key_path([key, *rest]))

    notes = [
        ScenarioProblem(filename, *at(position), note.key, f"{note.level}: {note.message}")
        for position, note in mapped.notes
    ]
    notes.sort(key=lambda p: (p.line, p.col))
    return ScenarioFile(filename, mapped.data, locate, flat=True, notes=notes)


class InvalidScenario(Exception):
    """Scenario data that does not validate; ``errors`` in pydantic's error-dict form."""

    def __init__(self, errors: list[Mapping[str, Any]]):
        super().__init__(f"{len(errors)} problem(s)")
        self.errors = errors


def validate_data(data: Mapping[str, Any]) -> Scenario:
    """Validate raw scenario data: the model's rules, then the checks across sections."""
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise InvalidScenario(list(exc.errors())) from None
    crossed = cross_section_problems(scenario)
    if crossed:
        raise InvalidScenario(
            [{"type": "value_error", "loc": loc, "msg": message} for loc, message in crossed]
        )
    return scenario


def _parse_yaml(text: str, filename: str) -> Any:
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise ScenarioError([ScenarioProblem(filename, line, col, "", message)]) from None
    except YAMLError as exc:
        raise ScenarioError([ScenarioProblem(filename, 1, 1, "", str(exc))]) from None


_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


def _parse_toml(text: str, filename: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.search(str(exc))
        line, col = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
        message = _TOML_POSITION.sub("", str(exc)).strip()
        raise ScenarioError([ScenarioProblem(filename, line, col, "", message)]) from None


def parse_override(item: str) -> tuple[tuple[str, ...], Any]:
    """``key.path=value`` as (key path, value); the value is read as a YAML scalar."""
    path, sep, raw = item.partition("=")
    keys = tuple(part for part in path.strip().split(".") if part)
    if not sep or not keys:
        raise ScenarioError(
            [ScenarioProblem(OVERRIDE_SOURCE, 1, 1, item, "expected key.path=value")]
        )
    try:
        value = YAML(typ="safe").load(raw) if raw.strip() else ""
    except YAMLError as exc:
        raise ScenarioError([ScenarioProblem(OVERRIDE_SOURCE, 1, 1, item, str(exc))]) from None
    return keys, value


def _apply_override(data: MutableMapping[str, Any], item: str) -> tuple[str | int, ...]:
    """Apply ``key.path=value`` to ``data`` in place; the value is read as a YAML scalar."""
    keys, value = parse_override(item)
    node = data
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, MutableMapping):
            where = ".".join(keys[: depth + 1])
            raise ScenarioError([ScenarioProblem(OVERRIDE_SOURCE, 1, 1, where, "is not a section")])
        node = child
    node[keys[-1]] = value
    return keys


class _YamlLocator:
    """Finds the line and column of a key path in ruamel.yaml round-trip data."""

    def __init__(self, root: Any):
        self.root = root

    def locate(self, path: Sequence[str | int], at_key: bool) -> tuple[int, int]:
        node, line, col = self.root, 1, 1
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            lc = getattr(node, "lc", None)
            if lc is None:
                break
            try:
                if isinstance(part, int):
                    line, col = lc.item(part)
                else:
                    line, col = lc.key(part) if (at_key and last) else lc.value(part)
                    if not last and not at_key:
                        line, col = lc.key(part)
                line, col = line + 1, col + 1
            except (KeyError, IndexError, TypeError):
                break
            node = node[part]
        return line, col


class _TomlLocator:
    """Finds the line of a key path in TOML source by scanning tables and keys."""

    def __init__(self, text: str):
        self.lines = text.splitlines()

    def locate(self, path: Sequence[str | int], at_key: bool) -> tuple[int, int]:
        keys = [part for part in path if isinstance(part, str)]
        best = (1, 1)
        for split in range(len(keys), -1, -1):
            table, rest = keys[:split], keys[split:]
            start = self._table_line(table)
            if start is None:
                continue
            if not rest:
                return (start + 1, 1)
            dotted = ".".join(rest)
            found = self._key_line(start, (rest[0], dotted))
            if found is not None:
                return found
            best = (start + 1, 1)
        return best

    def _table_line(self, table: list[str]) -> int | None:
        if not table:
            return 0
        header = re.compile(r"^\s*\[\[?\s*" + r"\s*\.\s*".join(map(re.escape, table)) + r"\s*\]")
        for index, line in enumerate(self.lines):
            if header.match(line):
                return index
        return None

    def _key_line(self, start: int, names: Iterable[str]) -> tuple[int, int] | None:
        for index in range(start + (1 if start else 0), len(self.lines)):
            line = self.lines[index]
            if index > start and start and line.lstrip().startswith("["):
                return None
            for name in names:
                match = re.match(r"^(\s*)\"?" + re.escape(name) + r"\"?\s*=", line)
                if match:
                    return (index + 1, len(match.group(1)) + 1)
        return None


def _problem(
    error: Mapping[str, Any],
    source: ScenarioFile,
    overridden: Sequence[tuple[str | int, ...]],
) -> ScenarioProblem:
    path, message = error_path_and_message(error)
    if any(tuple(path[: len(keys)]) == keys for keys in overridden):
        return ScenarioProblem(OVERRIDE_SOURCE, 1, 1, _key_path(path), message)
    return source.problem(error)


def error_path_and_message(error: Mapping[str, Any]) -> tuple[tuple[str | int, ...], str]:
    """A validation error's key path (distribution tags left out) and its message."""
    path = [part for part in error["loc"] if part not in DISTRIBUTION_TAGS]
    return tuple(path), _message(error, path)


def key_path_text(path: Sequence[str | int]) -> str:
    """A key path as problems show it: ``lora.lora-modules[0].name``."""
    return _key_path(path)


def describe_validation_errors(exc: InvalidScenario) -> list[str]:
    """Each error of a scenario validation as ``key.path: message``."""
    described = []
    for error in exc.errors:
        path = [part for part in error["loc"] if part not in DISTRIBUTION_TAGS]
        described.append(f"{_key_path(path)}: {_message(error, path)}")
    return described


def _key_path(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(error: Mapping[str, Any], path: Sequence[str | int]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden" and path and isinstance(path[-1], str):
        return _unknown_key_message(path[-1], [p for p in path[:-1] if isinstance(p, str)])
    if kind == "missing":
        return "is required"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind == "literal_error" or kind.endswith("_type") or kind.endswith("_parsing"):
        message += f" (got {error.get('input')!r})"
    return message


def _unknown_key_message(key: str, section: Sequence[str]) -> str:
    known = _known_keys()
    here = ".".join(section)
    candidates = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    if not candidates:
        return "unknown key"
    best = candidates[0]
    places = known[best]
    if here in places:
        return f"unknown key; did you mean '{best}'?"
    elsewhere = sorted(places)[0]
    where = "the top level" if elsewhere == "" else f"'{elsewhere}'"
    return f"unknown key; did you mean '{best}' (a key of {where})?"


@cache
def _known_keys() -> dict[str, set[str]]:
    """Every scenario key, mapped to the section paths where it is valid."""
    known: dict[str, set[str]] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            alias = field.alias or name
            known.setdefault(alias, set()).add(prefix)
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}.{alias}" if prefix else alias)

    walk(Scenario, "")
    return known
