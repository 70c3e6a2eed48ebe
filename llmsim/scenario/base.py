"""The base class of every scenario section: kebab-case keys, unknown keys forbidden, frozen."""

from __future__ import annotations

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
