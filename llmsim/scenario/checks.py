"""Checks that span sections, run after the model validates; each names the key at fault."""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from llmsim.scenario.base import Section
from llmsim.scenario.distributions import DISTRIBUTION_TAGS
from llmsim.scenario.model import Scenario
from llmsim.scenario.overlays import overlay_data, section_data

Location = tuple[str | int, ...]


def cross_section_problems(scenario: Scenario) -> list[tuple[Location, str]]:
    """Problems no single section can see: ``(key path, message)`` pairs."""
    return _lora_problems(scenario) + _overlay_problems(scenario)


def _lora_problems(scenario: Scenario) -> list[tuple[Location, str]]:
    problems: list[tuple[Location, str]] = []
    served = set(scenario.model.served_names)
    seen: set[str] = set()
    for index, module in enumerate(scenario.lora.lora_modules):
        where: Location = ("lora", "lora-modules", index)
        if module.name in served:
            problems.append(((*where, "name"), f"'{module.name}' is already a served model name"))
        if module.name in seen:
            problems.append(((*where, "name"), f"adapter '{module.name}' is listed twice"))
        seen.add(module.name)
        base = module.base_model_name
        if base is not None and base != scenario.model.name:
            problems.append(
                (
                    (*where, "base_model_name"),
                    f"must be the base model '{scenario.model.name}', not '{base}'",
                )
            )
    return problems


def _overlay_problems(scenario: Scenario) -> list[tuple[Location, str]]:
    """Every phase and rule overlay, merged onto its section, must be a valid section."""
    problems: list[tuple[Location, str]] = []
    names: set[str] = set()
    for index, phase in enumerate(scenario.phases):
        if phase.name in names:
            problems.append((("phases", index, "name"), f"phase '{phase.name}' is listed twice"))
        names.add(phase.name)
        for key in ("latency", "failures", "responses"):
            overlay = getattr(phase, key)
            problems += merged_problems(getattr(scenario, key), overlay, ("phases", index, key))
    for index, rule in enumerate(scenario.rules):
        problems += merged_problems(scenario.latency, rule.latency, ("rules", index, "latency"))
    return problems


def merge(section: Section, overlay: BaseModel | None) -> Section:
    """``section`` with the keys ``overlay`` sets, validated as a section of its kind."""
    data = section_data(section)
    data.update(overlay_data(overlay))
    return type(section).model_validate(data)


def merged_problems(
    section: Section, overlay: BaseModel | None, where: Location
) -> list[tuple[Location, str]]:
    """The problems of ``section`` merged with ``overlay``, located under ``where``."""
    if overlay is None:
        return []
    try:
        merge(section, overlay)
    except ValidationError as exc:
        return [
            (
                (*where, *(p for p in error["loc"] if p not in DISTRIBUTION_TAGS)),
                str(error["msg"]).removeprefix("Value error, "),
            )
            for error in exc.errors()
        ]
    return []
