"""Partial sections: the keys a phase or a rule may change, all optional.

An overlay is merged onto the section it changes, and the result is validated by that section's
own rules, so an overlay can never produce what a scenario file could not.
"""

from __future__ import annotations

from typing import Any, cast

from pydantic import BaseModel, create_model

from llmsim.scenario.base import Section
from llmsim.scenario.failures import FailuresSection
from llmsim.scenario.sections import LatencySection, ResponsesSection


def partial_section(section: type[Section], name: str) -> type[Section]:
    """A model with ``section``'s keys and types, every one optional and unset by default."""
    fields: dict[str, Any] = {
        key: (cast(Any, field.annotation) | None, None)
        for key, field in section.model_fields.items()
    }
    model = create_model(
        name, __base__=Section, __doc__=f"Changes to {section.__name__}.", **fields
    )
    return model


def overlay_data(overlay: BaseModel | None) -> dict[str, Any]:
    """The keys an overlay sets, in scenario form (kebab-case keys, durations as text)."""
    if overlay is None:
        return {}
    return overlay.model_dump(by_alias=True, mode="json", exclude_unset=True)


LatencyOverlay = partial_section(LatencySection, "LatencyOverlay")
FailuresOverlay = partial_section(FailuresSection, "FailuresOverlay")
ResponsesOverlay = partial_section(ResponsesSection, "ResponsesOverlay")
