"""Every operation of the served OpenAPI document, fuzzed by schemathesis: never a 5xx.

The budget is bounded and the generation seeded, so CI sees the same cases every run. The
operations that change the server's state (admin, fake metrics, sleep, LoRA) run against a
server of their own: an admin update may turn on failure injection (scripted 503s) or long
latencies, which would be the scenario's doing, not a bug of the endpoint fuzzed next.
``FUZZ_MAX_EXAMPLES`` raises the budget for a longer hunt.

The operations are collected from the document built in-process (schemathesis' lazy
``from_fixture`` loader reads ``request.node._nodeid``, which pytest 9.2 no longer has), and a
test checks that the running server serves exactly that document.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from llmsim.plan.compile import compile_scenario
from llmsim.scenario.loader import load_scenario_text
from llmsim.server.app import create_app
from tests.conftest import ServerFactory
from tests.support import RunningServer

SCENARIO = "version: 1\nmodel: {name: m, max-model-len: 64}\nlatency: {time-to-first-token: 0s}\n"
FAKE_METRICS = "metrics: {fake-metrics: {running-requests: 1, waiting-requests: 2}}\n"
STATE_CHANGING = [
    "/admin/config",
    "/fake_metrics",
    "/sleep",
    "/wake_up",
    "/v1/load_lora_adapter",
    "/v1/unload_lora_adapter",
]
REQUEST_TIMEOUT = 10.0
"""Seconds one fuzzed request may take; longer is a hang and fails the case."""
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
"""Fuzzed cases per operation, beyond the schema's examples and the coverage phase's cases."""
CONFIG: dict[str, Any] = {
    "seed": 20240611,
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
    "output": {"sanitization": {"enabled": False}},
}


def _document() -> dict[str, Any]:
    """The OpenAPI document the server of ``SCENARIO`` serves (built in-process, so the
    operations are known when tests are collected)."""
    plan = compile_scenario(load_scenario_text(SCENARIO, "fuzz.yaml"))
    return create_app(plan, environ={}).api.openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=SchemathesisConfig.from_dict(CONFIG))


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO)


@pytest.fixture(scope="module")
def stateful_server(server_factory: ServerFactory) -> RunningServer:
    return server_factory(SCENARIO + FAKE_METRICS)


def test_the_server_serves_the_fuzzed_document(server: RunningServer) -> None:
    assert httpx.get(f"{server.base_url}/openapi.json").json() == DOCUMENT


@schema.exclude(path=STATE_CHANGING).parametrize()
def test_no_operation_answers_a_server_error(case: Any, server: RunningServer) -> None:
    case.call_and_validate(
        base_url=server.base_url, checks=[not_a_server_error], timeout=REQUEST_TIMEOUT
    )


@schema.include(path=STATE_CHANGING).parametrize()
def test_no_state_changing_operation_answers_a_server_error(
    case: Any, stateful_server: RunningServer
) -> None:
    case.call_and_validate(
        base_url=stateful_server.base_url, checks=[not_a_server_error], timeout=REQUEST_TIMEOUT
    )
