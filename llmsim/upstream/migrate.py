"""``llmsim migrate``: an upstream flat config file rewritten as a sectioned scenario.

The file is read as ``llmsim run`` reads it (every key mapped onto its section and validated),
and the scenario is written back with the keys the file set and nothing else: durations as
strings (``2000`` ms becomes ``2s``), JSON-text entries (``lora-modules``, fake ``loras``) as
objects. Keys that have no effect in llmsim are left out, and a comment at the top says which
and why. The result compiles to the same runtime plan as the flat file.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from llmsim.errors import ScenarioError, ScenarioProblem
from llmsim.scenario.loader import LoadedScenario, read_scenario_text, read_text


def migrate_file(path: str | Path) -> tuple[str, LoadedScenario]:
    """The scenario text of flat config ``path``, and the file as loaded (with its notes)."""
    return migrate_text(read_text(path), str(path))


def migrate_text(text: str, filename: str) -> tuple[str, LoadedScenario]:
    """The scenario text of flat config ``text``; ``ScenarioError`` if it is not one or does
    not validate."""
    loaded = read_scenario_text(text, filename)
    if not loaded.flat:
        raise ScenarioError(
            [
                ScenarioProblem(
                    filename,
                    1,
                    1,
                    "",
                    "not an upstream flat config (it has a version or sections): already a"
                    " scenario",
                )
            ]
        )
    data = loaded.scenario.model_dump(by_alias=True, mode="json", exclude_unset=True)
    data["description"] = f"Migrated from the upstream config {Path(filename).name}."
    ordered = CommentedMap()
    for key in ("version", "name", "description"):
        ordered[key] = data.pop(key)
    for key, value in data.items():
        ordered[key] = _plain(value)
    header = ["Written by `llmsim migrate` from an llm-d-inference-sim flat config."]
    for note in loaded.notes:
        header.append(f"{note.key}: {note.message}")
    ordered.yaml_set_start_comment("\n".join(header))
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 100
    out = io.StringIO()
    yaml.dump(ordered, out)
    return out.getvalue(), loaded


def _plain(value: Any) -> Any:
    """Dumped data as plain mappings and lists (ruamel writes them in block style)."""
    if isinstance(value, dict):
        mapping = CommentedMap()
        for key, item in value.items():
            mapping[key] = _plain(item)
        return mapping
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
