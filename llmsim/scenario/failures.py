"""The ``failures`` section: upstream's failure injection (FAIL-1, FAIL-2)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

from llmsim.scenario.base import Section

FailureType = Literal[
    "rate_limit",
    "invalid_api_key",
    "context_length",
    "server_error",
    "invalid_request",
    "model_not_found",
]
FAILURE_TYPES: tuple[str, ...] = FailureType.__args__  # type: ignore[attr-defined]


def parse_percentage(value: Any) -> Any:
    """``5``, ``5.5`` or ``"5%"`` as a number (range checked by the field)."""
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"invalid percentage {value!r}: use 5 or '5%'") from None
    return value


Percentage = Annotated[
    float,
    BeforeValidator(parse_percentage),
    Field(ge=0, le=100, allow_inf_nan=False),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 100},
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*%?\s*$"},
            ],
            "description": "A percentage: 5 or '5%'.",
        }
    ),
]


class FailuresSection(Section):
    """Requests failed at random, before they are checked or queued."""

    failure_injection_rate: Percentage = Field(
        default=0.0, description="Share of generation requests that fail, in percent."
    )
    failure_types: list[FailureType] = Field(
        default_factory=list, description="Failure types drawn from (uniformly); empty: all six."
    )
