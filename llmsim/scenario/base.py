"""The base class of every scenario section: kebab-case keys, unknown keys forbidden, frozen."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict


def kebab(name: str) -> str:
    """The scenario key for a Python field name (``max_num_seqs`` -> ``max-num-seqs``)."""
    return name.replace("_", "-")


class Section(BaseModel):
    """A scenario section: keys are the upstream kebab-case names, extras are errors.

    Defaults are written in seconds and are not re-parsed (a bare number in a file means ms).
    """

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=kebab,
        populate_by_name=True,
        frozen=True,
    )


def json_text(what: str) -> Callable[[Any], Any]:
    """A before-validator for entries that upstream's flags give as JSON text: a string is
    parsed as JSON, anything else is left as it is."""

    def parse(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{what} given as text must be JSON: {exc}") from None

    return parse
