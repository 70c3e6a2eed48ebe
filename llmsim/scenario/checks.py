"""Checks that span sections, run after the model validates; each names the key at fault."""

from __future__ import annotations

from llmsim.scenario.model import Scenario

Location = tuple[str | int, ...]


def cross_section_problems(scenario: Scenario) -> list[tuple[Location, str]]:
    """Problems no single section can see: ``(key path, message)`` pairs."""
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
