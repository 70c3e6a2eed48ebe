"""Upstream's flat YAML config files, read as scenarios.

A file without ``version`` whose keys are upstream's flat keys (``model``, ``max-num-seqs``,
``time-to-first-token``, …) is an upstream config: each key is mapped onto its scenario section
(``llmsim/scenario/upstream.py`` says where). Newer upstream versions also group some keys
under ``kvcache:`` and ``latencies:`` blocks; those are read too. As upstream, a key set to null
keeps its default. Keys upstream spells in snake_case are not upstream keys (its YAML reader
ignores them): they are ignored with a warning naming the key meant. Any other unknown key is
an error. This module does no validation of mapped values: the scenario model does.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

from pydantic import BaseModel

from llmsim.scenario.flat import flat_paths
from llmsim.scenario.model import Scenario
from llmsim.scenario.upstream import (
    BY_NAME,
    NESTED_BLOCKS,
    Note,
    Path,
    assign,
    misspelled,
    settle_dataset,
)

FilePosition = tuple[str | int, ...]
"""Where a key is in the flat file: ``("max-num-seqs",)`` or ``("kvcache", "block-size")``."""


def section_names() -> frozenset[str]:
    """The scenario's section keys (``model``, ``engine``, …)."""
    names = set()
    for name, info in Scenario.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names.add(info.alias or name)
    return frozenset(names)


def is_flat(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` is an upstream flat config rather than a scenario: no ``version``, no
    section written as a mapping, and at least one key upstream knows."""
    if "version" in data:
        return False
    sections = section_names()
    if any(key in sections and isinstance(value, Mapping) for key, value in data.items()):
        return False
    known = set(BY_NAME) | set(flat_paths()) | set(NESTED_BLOCKS)
    return any(isinstance(key, str) and (key in known or misspelled(key)) for key in data)


@dataclass
class FlatProblem:
    """A key of the flat file that cannot be read."""

    position: FilePosition
    key: str
    message: str


@dataclass
class Unflattened:
    """A flat file as scenario data, with where each scenario key came from."""

    data: dict[str, Any]
    origins: dict[Path, tuple[str, FilePosition]] = field(default_factory=dict)
    """For each scenario path set: the flat key and its position in the file."""
    notes: list[tuple[FilePosition, Note]] = field(default_factory=list)
    problems: list[FlatProblem] = field(default_factory=list)


def unflatten(flat: Mapping[str, Any], filename: str) -> Unflattened:
    """Map the flat config ``flat`` onto scenario sections (``flat`` is not changed)."""
    stem = FilePath(filename).stem or "upstream"
    out = Unflattened({"version": 1, "name": stem})
    for key, value, position in _entries(flat, out):
        _read(key, value, position, out)
    for note in settle_dataset(out.data):
        out.notes.append(((note.key,), note))
    return out


def _entries(flat: Mapping[str, Any], out: Unflattened) -> list[tuple[str, Any, FilePosition]]:
    """Every (key, value, position), the keys of nested blocks included."""
    entries: list[tuple[str, Any, FilePosition]] = []
    for key, value in flat.items():
        if key in NESTED_BLOCKS and isinstance(value, Mapping):
            mixed = sorted(inner for inner in value if inner in flat)
            if mixed:
                out.problems.append(
                    FlatProblem(
                        (key,),
                        key,
                        f"{key} settings mix the flat layout ({', '.join(mixed)}) with the"
                        f" nested {key} block; use only one",
                    )
                )
            entries += [(str(inner), v, (key, inner)) for inner, v in value.items()]
        else:
            entries.append((str(key), value, (key,)))
    return entries


def _read(key: str, value: Any, position: FilePosition, out: Unflattened) -> None:
    if value is None:
        return
    upstream = BY_NAME.get(key)
    if upstream is not None:
        try:
            assigned = assign(upstream, value)
        except ValueError as exc:
            out.problems.append(FlatProblem(position, key, str(exc)))
            return
        for path, item in assigned.values:
            set_path(out.data, path, item)
            out.origins[path] = (key, position)
        out.notes += [(position, note) for note in assigned.notes]
        return
    leaf = flat_paths().get(key)
    if leaf is not None:
        set_path(out.data, leaf, value)
        out.origins[leaf] = (key, position)
        return
    meant = misspelled(key)
    if meant is not None:
        message = f"not an upstream key (upstream ignores it); did you mean '{meant}'? ignored"
        out.notes.append((position, Note(key, "warning", message)))
        return
    out.problems.append(FlatProblem(position, key, _unknown(key)))


def _unknown(key: str) -> str:
    candidates = difflib.get_close_matches(key, sorted(set(BY_NAME) | set(flat_paths())), n=1)
    hint = f"; did you mean '{candidates[0]}'?" if candidates else ""
    return f"unknown upstream config key{hint}"


def set_path(data: MutableMapping[str, Any], path: Path, value: Any) -> None:
    """Set ``path`` in nested ``data`` to ``value``, creating sections on the way."""
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, MutableMapping):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def origin_of(
    path: tuple[str | int, ...], origins: Mapping[Path, tuple[str, FilePosition]]
) -> tuple[str, FilePosition, tuple[str | int, ...]] | None:
    """The flat key and file position behind scenario ``path`` (its longest prefix that was
    set), and the rest of the path below it."""
    for length in range(len(path), 0, -1):
        prefix = path[:length]
        if all(isinstance(part, str) for part in prefix) and prefix in origins:
            key, position = origins[prefix]  # type: ignore[index]
            return key, position, path[length:]
    return None
