"""Test helpers: run a real simulator from a scenario and talk to it.

``serve`` is a context manager for any code; the pytest plugin (``llmsim.testing.plugin``,
registered through the ``pytest11`` entry point) offers the same thing as the ``llmsim_server``
fixture. Importing this package is cheap: it pulls in neither the server nor pytest.
"""

from llmsim.testing.server import (
    AdminConfigError,
    ScenarioSource,
    SimulatorFactory,
    SimulatorHandle,
    SimulatorStartError,
    serve,
    start,
)

__all__ = [
    "AdminConfigError",
    "ScenarioSource",
    "SimulatorFactory",
    "SimulatorHandle",
    "SimulatorStartError",
    "serve",
    "start",
]
