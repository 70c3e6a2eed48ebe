"""Partial sections: the keys a phase or a rule may change, all optional.

An overlay is merged onto the section it changes, and the result is validated by that section's
own rules, so an overlay can never produce what a scenario file could not.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from pydantic import BaseModel, Field, create_model
from pydantic.fields import FieldInfo

from llmsim.scenario.base import Section
from llmsim.scenario.failures import FailuresSection
from llmsim.scenario.sections import LatencySection, ResponsesSection


def partial_section(section: type[Section], name: str) -> type[Section]:
    """A model with ``section``'s keys and types, every one optional and unset by default."""
    fields: dict[str, Any] = {
        key: (
            _optional(field),
            Field(default=None, alias=field.alias, description=field.description),
        )
        for key, field in section.model_fields.items()
    }
    model = create_model(
        name, __base__=Section, __doc__=f"Changes to {section.__name__}.", **fields
    )
    return model


def _optional(field: FieldInfo) -> Any:
    """The field's type with its validators and bounds (kept in its metadata), or None."""
    annotation = cast(Any, field.annotation)
    if field.metadata:
        annotation = Annotated[(annotation, *field.metadata)]
    return annotation | None


def section_data(section: BaseModel) -> dict[str, Any]:
    """A validated section (or scenario) as data that validates again to the same thing:
    kebab-case keys, durations as text, unset optional keys left out."""
    return section.model_dump(by_alias=True, mode="json", exclude_none=True)


def overlay_data(overlay: BaseModel | None) -> dict[str, Any]:
    """The keys an overlay sets (to something), in scenario form."""
    if overlay is None:
        return {}
    return overlay.model_dump(by_alias=True, mode="json", exclude_unset=True, exclude_none=True)


LatencyOverlay = partial_section(LatencySection, "LatencyOverlay")
FailuresOverlay = partial_section(FailuresSection, "FailuresOverlay")
ResponsesOverlay = partial_section(ResponsesSection, "ResponsesOverlay")
