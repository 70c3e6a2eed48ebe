"""The llmsim pytest plugin: the ``llmsim_server`` fixture, a factory of running simulators.

Loaded by pytest through the ``pytest11`` entry point ``llmsim``. ``llmsim_server(scenario)``
starts a simulator (see ``llmsim.testing.start``) and returns its handle; every simulator it
started is stopped when the fixture is torn down. The fixture's scope is ``function`` unless the
``llmsim_server_scope`` ini option says otherwise. This module must stay cheap to import: every
pytest run in an environment with llmsim installed loads it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Literal, cast

import pytest

from llmsim.testing.server import ScenarioSource, SimulatorFactory, SimulatorHandle, start

_SCOPE_INI = "llmsim_server_scope"
_Scope = Literal["session", "package", "module", "class", "function"]
_SCOPES: frozenset[str] = frozenset({"session", "package", "module", "class", "function"})


def pytest_addoption(parser: pytest.Parser) -> None:
    """Declare the ``llmsim_server_scope`` ini option."""
    parser.addini(
        _SCOPE_INI,
        "scope of the llmsim_server fixture: function (default), class, module, package or session",
        default="function",
    )


def _fixture_scope(fixture_name: str, config: pytest.Config) -> _Scope:
    scope = str(config.getini(_SCOPE_INI)).strip() or "function"
    if scope not in _SCOPES:
        raise pytest.UsageError(
            f"{_SCOPE_INI} = {scope!r}: expected one of {', '.join(sorted(_SCOPES))}"
        )
    return cast(_Scope, scope)


@pytest.fixture(scope=_fixture_scope)
def llmsim_server() -> Iterator[SimulatorFactory]:
    """A factory of simulators: ``llmsim_server(scenario)`` starts one on a free loopback port
    (``scenario``: a file path, a dict, YAML text, or nothing for the built-in default) and
    returns its ``SimulatorHandle``. All of them stop at teardown."""
    started: list[SimulatorHandle] = []

    def factory(
        scenario: ScenarioSource = None,
        *,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float = 30.0,
    ) -> SimulatorHandle:
        handle = start(scenario, args=args, env=env, timeout=timeout)
        started.append(handle)
        return handle

    yield factory
    for handle in reversed(started):
        handle.stop()
