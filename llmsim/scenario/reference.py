"""The scenario reference table (Markdown), derived from the scenario model.

``docs/scenario-reference.md`` is this function's output; a test fails when it is stale.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from llmsim.scenario.distributions import ConstantDistribution
from llmsim.scenario.model import Scenario
from llmsim.scenario.units import format_duration

_HEADER = """\
# Scenario reference

Generated from the scenario model by `llmsim schema --format markdown` (`make schema`); do not
edit by hand. See [scenarios.md](scenarios.md) for the format and examples.

| key | type | default | description |
| --- | --- | --- | --- |
"""


def reference_markdown() -> str:
    """Every scenario key as a Markdown table row, sections in declaration order."""
    rows: list[str] = []
    _rows(Scenario, "", rows)
    return _HEADER + "\n".join(rows) + "\n"


def _rows(model: type[BaseModel], prefix: str, rows: list[str]) -> None:
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.append(f"| `{key}` | section | | {_doc(annotation.__doc__)} |")
            _rows(annotation, f"{key}.", rows)
            continue
        default = _default(field.default, field.metadata, annotation)
        description = field.description or ""
        rows.append(
            f"| `{key}` | {_type(annotation, field.metadata)} | {default} | {description} |"
        )


def _doc(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""


def _is_latency(annotation: Any) -> bool:
    """Whether the annotation is (or nests) the latency union of durations and distributions."""
    if annotation is ConstantDistribution:
        return True
    return any(_is_latency(arg) for arg in get_args(annotation))


def _is_duration(metadata: list[Any], annotation: Any) -> bool:
    return _is_latency(annotation) or any(
        getattr(m, "json_schema", {}).get("description", "").startswith("A duration")
        for m in metadata
    )


def _is_optional_duration(annotation: Any) -> bool:
    """``Duration | None``: the duration's metadata sits inside the union."""
    if get_origin(annotation) not in (types.UnionType, typing.Union):
        return False
    args = get_args(annotation)
    return type(None) in args and any(
        get_origin(arg) is typing.Annotated and _is_duration(list(arg.__metadata__), arg)
        for arg in args
    )


def _type(annotation: Any, metadata: list[Any]) -> str:
    if _is_latency(annotation):
        return "duration or distribution"
    if _is_duration(metadata, annotation):
        return "duration"
    if _is_optional_duration(annotation):
        return "duration or null"
    return _type_name(annotation)


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{value}`" for value in get_args(annotation))
    if origin in (types.UnionType, typing.Union):
        names = [_type_name(a) for a in get_args(annotation) if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in get_args(annotation) else "")
    if origin is typing.Annotated:
        return _type_name(get_args(annotation)[0])
    if origin is list:
        return f"list of {_type_name(get_args(annotation)[0])}"
    if annotation is float:
        return "number"
    if annotation is int:
        return "integer"
    if annotation is str:
        return "string"
    if annotation is bool:
        return "boolean"
    return getattr(annotation, "__name__", str(annotation))


def _default(value: Any, metadata: list[Any], annotation: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "null"
    if isinstance(value, float) and _is_duration(metadata, annotation):
        return f"`{format_duration(value)}`"
    return f"`{json.dumps(value)}`"
