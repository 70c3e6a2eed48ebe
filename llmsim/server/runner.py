"""Running the application under uvicorn (uvloop + httptools, access log off), over HTTP or
HTTPS, until SIGTERM or SIGINT: then new connections are refused, in-flight requests finish
(up to ``server.shutdown-timeout``, after which they are cancelled), and the process exits 0."""

from __future__ import annotations

import gc
import logging
import signal
from pathlib import Path

import uvicorn

from llmsim.errors import ScriptedDisconnect, StartupError
from llmsim.plan.plan import RuntimePlan
from llmsim.server.app import create_app
from llmsim.server.tls import certificate_folder, certificate_hosts, self_signed_certificate

log = logging.getLogger("llmsim")

GC_GEN0_THRESHOLD = 200_000


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        await super().startup(sockets)  # type: ignore[arg-type]
        # Start-up objects live for the whole run: keep them out of every GC pass. A request
        # leaves no cyclic garbage (reference counting frees it all), so collections are
        # pure pause: with a young generation of 200k, 1000 open streams (~90k objects) never
        # trigger one, where 20k paused every ~200 new streams for ~4 ms.
        gc.freeze()
        gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)


def _not_a_scripted_disconnect(record: logging.LogRecord) -> bool:
    """uvicorn logs an app's exception after the response started; a scripted disconnect
    raises one on purpose to make uvicorn drop the connection, so it is not logged."""
    return not (record.exc_info and isinstance(record.exc_info[1], ScriptedDisconnect))


def tls_files(plan: RuntimePlan) -> tuple[str | None, str | None]:
    """The certificate and key to serve HTTPS with (both None: plain HTTP)."""
    server = plan.scenario.server
    if server.self_signed_certs:
        cert, key = self_signed_certificate(certificate_folder(), certificate_hosts(plan.host))
        log.info("self-signed certificate written to %s", cert)
        return str(cert), str(key)
    for path in (server.ssl_certfile, server.ssl_keyfile):
        if path is not None and not Path(path).is_file():
            raise StartupError(f"TLS file not found: {path}")
    return server.ssl_certfile, server.ssl_keyfile


def _ignore_signal(signum: int, frame: object) -> None:
    """uvicorn re-raises the signal that stopped it once it has shut down; a graceful stop
    is a normal exit, so that second delivery does nothing."""


def serve(plan: RuntimePlan, access_log: bool = False, log_level: str = "info") -> None:
    """Serve ``plan`` until SIGTERM or SIGINT, then drain and return."""
    app = create_app(plan)
    certfile, keyfile = tls_files(plan)
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
        timeout_graceful_shutdown=max(1, round(plan.scenario.server.shutdown_timeout)),
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )
    log.info(
        "llmsim serving scenario %r (model %s) on %s://%s:%d (rank %d)",
        plan.scenario_name,
        plan.model.name,
        "https" if certfile else "http",
        plan.host,
        plan.port,
        plan.rank,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _ignore_signal)
    server = _Server(config)
    server.run()
    if not server.started:
        raise StartupError(f"could not serve on {plan.host}:{plan.port}")
