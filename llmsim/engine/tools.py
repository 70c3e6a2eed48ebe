"""Tool calls: upstream's schema validation and argument synthesis (TOOL-1 to TOOL-4).

Which tools are called follows ``tool_choice``: ``none`` never, ``auto`` (or absent) zero or
more, ``required`` at least one, a named function exactly that one; beyond the minimum, each
extra call happens with ``tool-call-extra-call-probability``. Arguments are drawn from each
tool's JSON schema so that they validate against it: required properties always, optional ones
with a probability, numbers within their bounds, strings within their lengths, enums from their
values. Everything random comes from the choice's own random source.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from llmsim.errors import BadRequest
from llmsim.scenario.sections import ToolCallSettings

ALLOWED_KEYS = frozenset(
    {
        "type", "description", "enum", "properties", "items", "required",
        "additionalProperties", "minItems", "maxItems", "default", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "format",
        "title",
    }
)  # fmt: skip
TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
SIZE_KEYWORDS = ("minItems", "maxItems", "minLength", "maxLength")
BOUND_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
MAX_SIZE = 10_000
"""The largest size keyword a schema may use: an answer is built in full on the event loop."""
MAX_VALUES = 100_000
"""The most values (objects, arrays, scalars) one drawn answer may hold, nesting included."""
WORDS = (
    "alpha", "breeze", "Lisbon", "cobalt", "harbour", "meadow", "quartz", "sunrise", "tide",
    "violet",
)  # fmt: skip
"""The strings a string argument is drawn from (llmsim's own list)."""
CALL_ID_PREFIX = "chatcmpl-tool-"


@dataclass(frozen=True, slots=True)
class SynthesizedCall:
    """One tool call of an answer."""

    id: str
    name: str
    arguments: str
    """Compact JSON with sorted keys."""

    @property
    def digits(self) -> str:
        """The call's ten random digits, which other APIs' ids are built from."""
        return self.id.removeprefix(CALL_ID_PREFIX)


def validate_tools(tools: Sequence[Mapping[str, Any]]) -> None:
    """Upstream's validation of the request's tools (TOOL-1): 400 ``Tool validation failed``."""
    for index, tool in enumerate(tools):
        function = tool.get("function")
        if tool.get("type", "function") != "function" or not isinstance(function, Mapping):
            _fail(f"tools[{index}] must be a function tool")
        for key in ("name", "description", "parameters"):
            if key not in function:
                _fail(f"tools[{index}].function.{key} is required")
        if not isinstance(function["name"], str) or not function["name"]:
            _fail(f"tools[{index}].function.name must be a non-empty string")
        _check_schema(function["parameters"], f"tools[{index}].function.parameters")


def _fail(detail: str) -> NoReturn:
    raise BadRequest(f"Tool validation failed: {detail}", param="tools")


def _check_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, Mapping):
        _fail(f"{where} must be an object")
    unknown = sorted(set(schema) - ALLOWED_KEYS)
    if unknown:
        _fail(f"{where} has unsupported keys: {', '.join(unknown)}")
    kind = schema.get("type")
    if not isinstance(kind, str) or kind not in TYPES:
        _fail(f"{where}.type must be one of {', '.join(sorted(TYPES))}")
    if "enum" in schema:
        values = schema["enum"]
        if kind in ("null", "object", "array") or not isinstance(values, list) or not values:
            _fail(f"{where}.enum is not allowed here or is empty")
        if not all(_is_type(value, kind) for value in values):
            _fail(f"{where}.enum values must be of type {kind}")
    if kind == "array":
        if "items" not in schema:
            _fail(f"{where} is an array without items")
        _check_schema(schema["items"], f"{where}.items")
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            _fail(f"{where} is an object without properties")
        for name, sub in properties.items():
            _check_schema(sub, f"{where}.properties.{name}")
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(
            isinstance(r, str) and r in properties for r in required
        ):
            _fail(f"{where}.required names properties that do not exist")
    if "additionalProperties" in schema and not isinstance(schema["additionalProperties"], bool):
        _fail(f"{where}.additionalProperties must be true or false")
    problem = schema_problem(schema)
    if problem is not None:
        _fail(f"{where}.{problem}")
    low, high = schema.get("minItems", 0), schema.get("maxItems")
    if high is not None and low > high:
        _fail(f"{where}: minItems is above maxItems")


def schema_problem(schema: Mapping[str, Any]) -> str | None:
    """What makes one schema node unusable for drawing a value (None: nothing): keywords of
    the wrong type, sizes beyond ``MAX_SIZE``, bounds that are not finite numbers."""
    if "enum" in schema and not (isinstance(schema["enum"], list) and schema["enum"]):
        return "enum must be a non-empty list"
    for key in ("properties", "items"):
        if key in schema and not isinstance(schema[key], Mapping):
            return f"{key} must be an object"
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        return "required must be a list of property names"
    for key in SIZE_KEYWORDS:
        size = schema.get(key, 0)
        if not (isinstance(size, int) and not isinstance(size, bool) and 0 <= size <= MAX_SIZE):
            return f"{key} must be an integer from 0 to {MAX_SIZE}"
    for key in BOUND_KEYWORDS:
        if key in schema and not _finite(schema[key]):
            return f"{key} must be a finite number"
    return None


def _finite(value: Any) -> bool:
    """Whether ``value`` is a number a float can hold."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _is_type(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return False


def choose_calls(
    rng: random.Random,
    tools: Sequence[Mapping[str, Any]],
    tool_choice: Any,
    settings: ToolCallSettings,
) -> list[SynthesizedCall]:
    """The calls an answer makes (TOOL-2); empty means a text answer."""
    if not tools or tool_choice == "none":
        return []
    functions = [tool["function"] for tool in tools]
    if isinstance(tool_choice, Mapping):
        name = (tool_choice.get("function") or {}).get("name")
        named = [f for f in functions if f["name"] == name]
        if not named:
            raise BadRequest(
                f"tool with name '{name}' requested in tool_choice but not found in the tools list",
                param="tool_choice",
            )
        return [_call(rng, named[0], settings)]
    count = 1 if tool_choice == "required" else 0
    while count < len(functions) and rng.random() * 100 < settings.tool_call_extra_call_probability:
        count += 1
    return [_call(rng, functions[rng.randrange(len(functions))], settings) for _ in range(count)]


def _call(
    rng: random.Random, function: Mapping[str, Any], settings: ToolCallSettings
) -> SynthesizedCall:
    arguments = _value(rng, function["parameters"], settings, [MAX_VALUES], top=True)
    digits = "".join(str(rng.randrange(10)) for _ in range(10))
    return SynthesizedCall(
        id=f"{CALL_ID_PREFIX}{digits}",
        name=function["name"],
        arguments=json.dumps(arguments, separators=(",", ":"), sort_keys=True),
    )


def _value(
    rng: random.Random,
    schema: Mapping[str, Any],
    settings: ToolCallSettings,
    budget: list[int],
    top: bool = False,
) -> Any:
    """A value that validates against ``schema`` (TOOL-3); 400 for a schema no value can be
    drawn from, or whose value would hold more than ``budget[0]`` values in all."""
    problem = "it must be an object" if not isinstance(schema, Mapping) else schema_problem(schema)
    budget[0] -= 1
    if problem is None and budget[0] < 0:
        problem = f"its value would hold more than {MAX_VALUES} values"
    if problem is not None:
        raise BadRequest(f"Cannot answer for this JSON schema: {problem}")
    if "enum" in schema:
        return schema["enum"][rng.randrange(len(schema["enum"]))]
    kind = schema.get("type")
    if kind == "object":
        required = set(schema.get("required", []))
        share = (
            settings.tool_call_not_required_param_probability
            if top
            else settings.object_tool_call_not_required_field_probability
        )
        return {
            name: _value(rng, sub, settings, budget)
            for name, sub in schema.get("properties", {}).items()
            if name in required or rng.random() * 100 < share
        }
    if kind == "array":
        low = max(schema.get("minItems", settings.min_tool_call_array_param_length), 0)
        high = schema.get("maxItems", max(settings.max_tool_call_array_param_length, low))
        return [
            _value(rng, schema["items"], settings, budget)
            for _ in range(rng.randint(low, max(low, high)))
        ]
    if kind == "integer":
        low, high = _bounds(
            schema, settings.min_tool_call_integer_param, settings.max_tool_call_integer_param
        )
        return rng.randint(int(_ceil(low)), max(int(_ceil(low)), int(high)))
    if kind == "number":
        low, high = _bounds(
            schema, settings.min_tool_call_number_param, settings.max_tool_call_number_param
        )
        return round(low + (high - low) * rng.random(), 6) if high > low else low
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string(rng, schema)


def _bounds(schema: Mapping[str, Any], low: float, high: float) -> tuple[float, float]:
    if "minimum" in schema:
        low = schema["minimum"]
    if "exclusiveMinimum" in schema and isinstance(schema["exclusiveMinimum"], int | float):
        low = max(
            low, schema["exclusiveMinimum"] + (1 if schema.get("type") == "integer" else 1e-6)
        )
    if "maximum" in schema:
        high = schema["maximum"]
    if "exclusiveMaximum" in schema and isinstance(schema["exclusiveMaximum"], int | float):
        high = min(
            high, schema["exclusiveMaximum"] - (1 if schema.get("type") == "integer" else 1e-6)
        )
    if high < low:
        high = low
    return low, high


def _ceil(value: float) -> float:
    return float(-(-value // 1))


def _string(rng: random.Random, schema: Mapping[str, Any]) -> str:
    text = WORDS[rng.randrange(len(WORDS))]
    low = int(schema.get("minLength", 0))
    high = schema.get("maxLength")
    while len(text) < low:
        text += WORDS[rng.randrange(len(WORDS))]
    if high is not None:
        text = text[: int(high)]
    return text


MAX_SCHEMA_DEPTH = 32
"""The deepest a structured-output schema is followed (recursive schemas stop here)."""
NULLABLE_DEPTH = 8
"""From this depth on, a choice between a value and ``null`` takes ``null`` (ends recursion)."""


JSON_OBJECT_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}
"""What a ``json_object`` answer (JSON mode without a schema) looks like."""


def structured_answer(
    rng: random.Random, kind: str, schema: Any, settings: ToolCallSettings
) -> str | None:
    """The text of a structured-output answer: a JSON document valid against ``schema`` for
    ``json_schema``, a small JSON object for ``json_object``; None for plain text."""
    if kind == "json_schema" and isinstance(schema, Mapping):
        return synthesize_json(rng, schema, settings)
    if kind == "json_object":
        return synthesize_json(rng, JSON_OBJECT_SCHEMA, settings)
    return None


def synthesize_json(rng: random.Random, schema: Any, settings: ToolCallSettings) -> str:
    """A JSON document that validates against ``schema`` (structured outputs), drawn as tool
    arguments are (TOOL-3). References into ``$defs``/``definitions`` are followed, the first
    non-null branch of ``anyOf``/``oneOf`` taken, ``allOf`` merged, ``const`` kept and a list of
    types narrowed to its first; ``pattern`` and ``format`` are not honoured."""
    value = _value(rng, _plain(schema, schema, 0), settings, [MAX_VALUES], top=True)
    return json.dumps(value, ensure_ascii=False)


def _plain(schema: Any, root: Any, depth: int) -> dict[str, Any]:
    """``schema`` in the subset ``_value`` draws from."""
    if depth > MAX_SCHEMA_DEPTH:
        raise BadRequest("the JSON schema is nested too deeply or is recursive", param="text")
    if not isinstance(schema, Mapping):
        return {}
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _plain(_resolve(ref, root), root, depth + 1)
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            nulls = [b for b in branches if isinstance(b, Mapping) and b.get("type") == "null"]
            others = [b for b in branches if b not in nulls]
            preferred = nulls if depth >= NULLABLE_DEPTH else others
            return _plain((preferred or branches)[0], root, depth + 1)
    merged = dict(schema)
    parts = merged.pop("allOf", None)
    if isinstance(parts, list):
        for part in parts:
            merged.update(_plain(part, root, depth + 1))
    if "const" in merged:
        merged["enum"] = [merged["const"]]
    kind = merged.get("type")
    if isinstance(kind, list):
        merged["type"] = next((k for k in kind if k != "null"), "null")
    properties = merged.get("properties")
    if isinstance(properties, Mapping):
        merged["properties"] = {k: _plain(v, root, depth + 1) for k, v in properties.items()}
        merged.setdefault("type", "object")
    if merged.get("type") == "array" or "items" in merged:
        merged["items"] = _plain(merged.get("items"), root, depth + 1)
        merged.setdefault("type", "array")
    return merged


def _resolve(ref: str, root: Any) -> Any:
    """The schema a local ``$ref`` (``#/...``) points at; 400 for any other reference."""
    target = root
    if ref != "#" and not ref.startswith("#/"):
        raise BadRequest(f"unsupported $ref '{ref}' in the JSON schema", param="text")
    for key in ref[2:].split("/") if ref != "#" else ():
        key = key.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, Mapping) or key not in target:
            raise BadRequest(f"$ref '{ref}' does not resolve in the JSON schema", param="text")
        target = target[key]
    return target
