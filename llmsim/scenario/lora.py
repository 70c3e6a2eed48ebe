"""The ``lora`` section: adapters served beside the base model (LORA-1).

Entries of ``lora-modules`` are objects or, as upstream's ``--lora-modules`` flag takes them,
JSON strings: ``{"name": "sql-lora", "path": "/adapters/sql", "base_model_name": "..."}``.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from llmsim.scenario.base import Section, json_text


class LoraModule(Section):
    """One adapter loaded at start."""

    name: str = Field(min_length=1, description="The name requests use as `model`.")
    path: str = Field(default="", description="Where the adapter lives; shown as `root`.")
    base_model_name: str | None = Field(
        default=None, alias="base_model_name", description="Must be the base model if given."
    )


class LoraSection(Section):
    """LoRA adapters and how many may be loaded at once."""

    max_loras: int = Field(default=1, ge=1, description="Adapters loaded (runnable) at once.")
    max_cpu_loras: int | None = Field(
        default=None, ge=1, description="Accepted for compatibility; at least max-loras."
    )
    lora_modules: list[
        Annotated[LoraModule, BeforeValidator(json_text("a lora-modules entry"))]
    ] = Field(default_factory=list, description="Adapters available from the start.")

    @model_validator(mode="after")
    def _cpu_loras_hold_the_gpu_ones(self) -> LoraSection:
        if self.max_cpu_loras is not None and self.max_cpu_loras < self.max_loras:
            raise ValueError("max-cpu-loras must be at least max-loras")
        return self
