"""Runtime reconfiguration: ``GET``/``POST /admin/config`` and the deprecated ``/fake_metrics``.

A change is applied to the running scenario, validated by the same rules as a scenario file,
compiled into a new plan and swapped in at once: a request in flight keeps the plan it started
with. Keys are upstream's flat names; an integer duration means nanoseconds, as upstream's JSON
(CFG-3); a string duration is read as in scenario files.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmsim.errors import BadRequest
from llmsim.plan.compile import compile_scenario
from llmsim.plan.plan import RuntimePlan
from llmsim.scenario.flat import flatten, set_flat
from llmsim.scenario.loader import InvalidScenario, describe_validation_errors, validate_data
from llmsim.scenario.model import LatencySection
from llmsim.scenario.overlays import section_data

FAKE_METRICS_KEY = "fake-metrics"
_LATENCY_KEYS = frozenset(
    field.alias or name for name, field in LatencySection.model_fields.items()
)
ADMIN_KEYS = _LATENCY_KEYS | {FAKE_METRICS_KEY, "failure-injection-rate", "failure-types"}
_NOT_DURATIONS = frozenset({"latency-calculator", "time-factor-under-load"})
REAL_METRICS = "the simulator is reporting real metrics; fake metrics cannot be updated"


REDACTED = "<redacted>"


def config_view(plan: RuntimePlan, active_phase: str | None) -> dict[str, Any]:
    """``GET /admin/config``: the flat upstream configuration, the scenario and active phase."""
    view = flatten(plan.scenario)
    if view.get("api-key") is not None:
        view["api-key"] = REDACTED  # admin is not behind the key: never show it
    view["seed"] = plan.seed
    view["scenario"] = plan.scenario_name
    view["active-phase"] = active_phase
    return view


def parse_object(body: bytes, what: str) -> dict[str, Any]:
    """A JSON object from a request body, or a 400 naming ``what`` was being read."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"failed to read and parse {what} request body, {exc}") from None
    if not isinstance(value, dict):
        raise BadRequest(f"failed to read and parse {what} request body, expected an object")
    return value


def updated_plan(plan: RuntimePlan, updates: dict[str, Any]) -> RuntimePlan:
    """The plan after a partial update of admin-configurable keys; a 400 changes nothing."""
    for key in updates:
        if key not in ADMIN_KEYS:
            raise BadRequest(f"field '{key}' is not admin-configurable", param=key)
    data = section_data(plan.scenario)
    for key, value in updates.items():
        if key == FAKE_METRICS_KEY:
            value = _merged_fake_metrics(plan, value)
        elif key in _LATENCY_KEYS and key not in _NOT_DURATIONS:
            value = _nanoseconds(value)
        set_flat(data, key, value)
    try:
        scenario = validate_data(data)
    except InvalidScenario as exc:
        raise BadRequest("; ".join(describe_validation_errors(exc))) from None
    return compile_scenario(scenario, default_seed=plan.seed)


def _nanoseconds(value: Any) -> Any:
    """Upstream's JSON durations: an integer counts nanoseconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value}ns"
    return value


def _merged_fake_metrics(plan: RuntimePlan, partial: Any) -> Any:
    """FAKE-6: keys given (not null) replace, the rest stay; only with fake metrics running."""
    current = plan.scenario.metrics.fake_metrics
    if current is None:
        raise BadRequest(REAL_METRICS, param=FAKE_METRICS_KEY)
    if not isinstance(partial, dict):
        raise BadRequest("fake-metrics must be an object", param=FAKE_METRICS_KEY)
    merged = current.model_dump(by_alias=True, mode="json", exclude_none=True)
    merged.update({key: value for key, value in partial.items() if value is not None})
    return merged
