"""The scenario model: the one source of truth for every key, default and validation rule.

Leaf keys keep the upstream simulator's kebab-case names; sections group them. Defaults are the
upstream defaults. The JSON schema, ``llmsim validate`` and the docs are derived from here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

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
