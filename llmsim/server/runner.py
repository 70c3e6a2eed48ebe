"""Running the application under uvicorn (uvloop + httptools, access log off)."""

from __future__ import annotations

import gc
import logging

import uvicorn

from llmsim.errors import ScriptedDisconnect
from llmsim.plan.plan import RuntimePlan
from llmsim.server.app import create_app

log = logging.getLogger("llmsim")

GC_GEN0_THRESHOLD = 20_000


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets)  # type: ignore[arg-type]
        # Start-up objects live for the whole run: keep them out of every GC pass. Requests
        # allocate many short-lived objects; a larger young generation collects less often.
        gc.freeze()
        gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)


def _not_a_scripted_disconnect(record: logging.LogRecord) -> bool:
    """uvicorn logs an app's exception after the response started; a scripted disconnect
    raises one on purpose to make uvicorn drop the connection, so it is not logged."""
    return not (record.exc_info and isinstance(record.exc_info[1], ScriptedDisconnect))


def serve(plan: RuntimePlan, access_log: bool = False, log_level: str = "info") -> None:
    """Serve ``plan`` until interrupted."""
    app = create_app(plan)
    logging.getLogger("uvicorn.error").addFilter(_not_a_scripted_disconnect)
    config = uvicorn.Config(
        app,
        host=plan.host,
        port=plan.port,
        loop="uvloop",
        http="httptools",
        access_log=access_log,
        log_level=log_level,
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
    log.info(
        "llmsim serving scenario %r (model %s) on %s:%d",
        plan.scenario_name,
        plan.model.name,
        plan.host,
        plan.port,
    )
    _Server(config).run()
