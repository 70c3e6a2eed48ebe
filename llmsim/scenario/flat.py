"""Upstream's flat configuration keys and where they live in a scenario.

Scenario leaf keys keep the upstream names, so the flat key of ``engine.max-num-seqs`` is
``max-num-seqs``, also one level further down (``responses.tools.tool-call-extra-call-probability``
is ``tool-call-extra-call-probability``); only a few differ (``model.name`` is upstream's
``model``, ``responses.dataset.path`` its ``dataset-path``). Optional objects (``reasoning``,
``fake-metrics``, ``tokenizer``) are leaves. llmsim's own top-level keys (``version``, ``name``,
``description``) have no flat form.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel

from llmsim.scenario.model import Scenario

_RENAMED = {
    ("model", "name"): "model",
    ("responses", "mode"): "mode",
    ("responses", "dataset", "path"): "dataset-path",
    ("responses", "dataset", "url"): "dataset-url",
    ("responses", "dataset", "table"): "dataset-table-name",
    ("responses", "dataset", "in-memory"): "dataset-in-memory",
}
_SCENARIO_ONLY = frozenset({"version", "name", "description"})
_FLAT_LEAF_OBJECTS = frozenset({("responses", "dataset")})
"""Optional objects whose fields upstream spells as flat keys of their own."""


@cache
def flat_paths() -> dict[str, tuple[str, ...]]:
    """Every flat key, mapped to its path in a scenario."""
    paths: dict[str, tuple[str, ...]] = {}

    def walk(model: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, field in model.model_fields.items():
            path = (*prefix, field.alias or name)
            if path[0] in _SCENARIO_ONLY and len(path) == 1:
                continue
            nested = _section_type(field.annotation, path)
            if nested is not None:
                walk(nested, path)
            else:
                paths[_RENAMED.get(path, path[-1])] = path

    walk(Scenario, ())
    return paths


@cache
def flat_key_of(path: tuple[str, ...]) -> str | None:
    """The flat key of scenario ``path``, or None when the path has no flat form."""
    return {path: key for key, path in flat_paths().items()}.get(path)


def _section_type(annotation: Any, path: tuple[str, ...]) -> type[BaseModel] | None:
    """The model a field nests (a plain section, or an optional object upstream flattens)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if path in _FLAT_LEAF_OBJECTS:
        for member in getattr(annotation, "__args__", ()):
            if isinstance(member, type) and issubclass(member, BaseModel):
                return member
    return None


def flatten(scenario: Scenario) -> dict[str, Any]:
    """The scenario as upstream's flat configuration (durations as strings); keys of an
    optional object that is not set are null."""
    data = scenario.model_dump(by_alias=True, mode="json")
    flat = {}
    for key, path in flat_paths().items():
        value: Any = data
        for part in path:
            value = value.get(part) if isinstance(value, Mapping) else None
        flat[key] = value
    return flat


def set_flat(data: dict[str, Any], key: str, value: Any) -> None:
    """Set upstream flat ``key`` to ``value`` inside sectioned scenario ``data``."""
    *sections, leaf = flat_paths()[key]
    node = data
    for section in sections:
        child = node.get(section)
        if not isinstance(child, Mapping):
            child = node[section] = {}
        node = child  # type: ignore[assignment]
    node[leaf] = value
