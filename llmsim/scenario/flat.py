"""Upstream's flat configuration keys and where they live in a scenario.

Scenario leaf keys keep the upstream names, so the flat key of ``engine.max-num-seqs`` is
``max-num-seqs``; only a few differ (``model.name`` is upstream's ``model``). llmsim's own
top-level keys (``version``, ``name``, ``description``) have no flat form.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from pydantic import BaseModel

from llmsim.scenario.model import Scenario

_RENAMED = {("model", "name"): "model", ("responses", "mode"): "mode"}
_SCENARIO_ONLY = frozenset({"version", "name", "description"})


@cache
def flat_paths() -> dict[str, tuple[str, ...]]:
    """Every upstream flat key, mapped to its path in a scenario."""
    paths: dict[str, tuple[str, ...]] = {}
    for name, field in Scenario.model_fields.items():
        key = field.alias or name
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for leaf_name, leaf in annotation.model_fields.items():
                path = (key, leaf.alias or leaf_name)
                paths[_RENAMED.get(path, path[1])] = path
        elif key not in _SCENARIO_ONLY:
            paths[key] = (key,)
    return paths


def flatten(scenario: Scenario) -> dict[str, Any]:
    """The scenario as upstream's flat configuration (durations as strings)."""
    data = scenario.model_dump(by_alias=True, mode="json")
    flat = {}
    for key, path in flat_paths().items():
        value: Any = data
        for part in path:
            value = value[part]
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
