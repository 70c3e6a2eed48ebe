"""Shared fixtures: a factory that starts real servers from scenario text."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import RunningServer, start_server

ServerFactory = Callable[..., RunningServer]


@pytest.fixture(scope="module")
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Start servers from scenario YAML text (or the built-in default with ``None``); all are
    stopped when the module's tests are done."""
    started: list[RunningServer] = []
    folder: Path = tmp_path_factory.mktemp("scenarios")

    def start(
        scenario_yaml: str | None, *args: str, env: dict[str, str] | None = None
    ) -> RunningServer:
        path = None
        if scenario_yaml is not None:
            path = folder / f"scenario-{len(started)}.yaml"
            path.write_text(scenario_yaml)
        server = start_server(path, args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def steady_gc() -> Iterator[None]:
    """No garbage-collector pauses in the test process while a test times the server: by the
    time the integration tests run, earlier tests have left a large heap whose full collections
    take hundreds of milliseconds, which a client-side clock would blame on the server."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()
