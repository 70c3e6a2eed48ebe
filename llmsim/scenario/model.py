"""The scenario model: the one source of truth for every key, default and validation rule.

Leaf keys keep the upstream simulator's kebab-case names; sections group them. Defaults are the
upstream defaults. The JSON schema, ``llmsim validate`` and the docs are derived from here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from llmsim.scenario.base import Section
from llmsim.scenario.failures import FailuresSection
from llmsim.scenario.fake_metrics import MetricsSection
from llmsim.scenario.kv_cache import KVCacheSection
from llmsim.scenario.lora import LoraSection
from llmsim.scenario.scripting import Phase, Rule
from llmsim.scenario.sections import (
    EngineSection,
    LatencySection,
    ModelSection,
    ResponsesSection,
    ServerSection,
)

__all__ = [
    "EngineSection",
    "LatencySection",
    "ModelSection",
    "ResponsesSection",
    "Scenario",
    "ServerSection",
]


class Scenario(Section):
    """A whole simulated deployment."""

    version: Literal[1] = Field(description="The scenario format version.")
    name: str = Field(default="unnamed", description="A short name, shown in logs.")
    description: str = Field(default="", description="What the scenario is for.")
    seed: int | None = Field(
        default=None, description="Seed of all random choices; default: the start time in ns."
    )
    model: ModelSection = ModelSection()
    server: ServerSection = ServerSection()
    engine: EngineSection = EngineSection()
    latency: LatencySection = LatencySection()
    responses: ResponsesSection = ResponsesSection()
    lora: LoraSection = LoraSection()
    kv_cache: KVCacheSection = KVCacheSection()
    failures: FailuresSection = FailuresSection()
    rules: list[Rule] = Field(default_factory=list, description="Per request, first match wins.")
    phases: list[Phase] = Field(default_factory=list, description="Overlays over time.")
    metrics: MetricsSection = MetricsSection()

    @model_validator(mode="after")
    def _batched_timing(self) -> Scenario:
        """In batched mode the engine loop times every token: per-request latency keys would
        do nothing, so they are errors rather than silently ignored."""
        if self.engine.mode != "batched":
            return self
        places: list[str] = [
            f"latency.{key}" for key in _timing_keys(self.latency.model_fields_set)
        ]
        overlays = [(f"rules[{i}]", rule.latency) for i, rule in enumerate(self.rules)]
        overlays += [(f"phases[{i}]", phase.latency) for i, phase in enumerate(self.phases)]
        for where, overlay in overlays:
            if overlay is not None:
                keys = _timing_keys(overlay.model_fields_set)
                places += [f"{where}.latency.{key}" for key in keys]
        if places:
            raise ValueError(
                f"{', '.join(places)}: per-request timing does not apply with engine.mode:"
                " batched (the engine loop times tokens from engine.step-time); remove it, or"
                " use engine.mode: per-request"
            )
        return self


BATCHED_LATENCY_KEYS = frozenset({"time_to_generate_image", "time_to_generate_image_std_dev"})
"""Latency keys that still apply in batched mode (an omni image comes after the text)."""


def _timing_keys(fields: set[str]) -> list[str]:
    return sorted(name.replace("_", "-") for name in fields if name not in BATCHED_LATENCY_KEYS)
