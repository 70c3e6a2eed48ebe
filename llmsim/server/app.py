"""The ASGI application: FastAPI for everything, lean routes for the generation endpoints.

FastAPI serves health, models, error handling and the OpenAPI document. The generation endpoints
are dispatched before FastAPI by an exact path lookup to ``GenerationRoute`` apps, which parse
bodies once and write pre-encoded frames straight to ASGI ``send``: FastAPI's per-request
machinery would cost more than the simulation itself.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmsim import __version__
from llmsim.errors import BadRequest, LlmsimError, MethodNotAllowed, Unauthorized
from llmsim.plan.plan import RuntimePlan
from llmsim.server.admin import FAKE_METRICS_KEY, config_view, parse_object, updated_plan
from llmsim.server.chat import ChatEndpoint
from llmsim.server.completions import CompletionsEndpoint
from llmsim.server.connection import Message, Receive, Scope, Send
from llmsim.server.embeddings import embeddings_router
from llmsim.server.errors import body_for, error_body
from llmsim.server.generate import GenerateEndpoint
from llmsim.server.generation import (
    REQUEST_ID_HEADER,
    Endpoint,
    GenerationRoute,
    HttpSettings,
    request_headers,
)
from llmsim.server.http_metrics import CountedSend
from llmsim.server.messages import MessagesEndpoint
from llmsim.server.openapi import document_api
from llmsim.server.pacer import TokenPacer
from llmsim.server.responses import ResponsesEndpoint
from llmsim.server.simulator import Simulator
from llmsim.server.tokenize import tokenize_router

MB = 1024 * 1024
HEADER_PATHS = frozenset(
    {"/v1/embeddings", "/v1/completions/render", "/v1/chat/completions/render"}
)
"""FastAPI routes whose successful responses carry the pod and request-id headers (HDR-1)."""


class LlmsimApp:
    """Routes generation endpoints to lean ASGI apps and everything else to FastAPI; checks
    the API key on ``/v1/*`` (vLLM's ``--api-key``); counts requests by handler, method and
    status (``http_requests_total``, see http_metrics.py)."""

    def __init__(
        self,
        api: FastAPI,
        lean_routes: dict[str, GenerationRoute[Any]],
        simulator: Simulator,
        http: HttpSettings,
        api_key: str | None = None,
    ):
        self.api = api
        self.lean_routes = lean_routes
        self.simulator = simulator
        self.http = http
        self.api_key = api_key
        self.requests = simulator.http_requests
        self._lean_handlers = {path: self.requests.handler(path) for path in lean_routes}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            route = self.lean_routes.get(path)
            if (
                self.api_key is not None
                and path.startswith("/v1/")
                and not _authorized(request_headers(scope), self.api_key)
            ):
                # Not counted: vLLM's API-key middleware sits outside its request counter.
                denied = Unauthorized("Unauthorized")
                write = route.endpoint.error_body if route is not None else body_for
                await _send_error(send, denied.status, write(denied))
                return
            if path in HEADER_PATHS:
                send = self._with_headers(scope, send)
            if route is not None:
                method = scope["method"]
                handler = self._lean_handlers[path]
                if method == "POST":
                    # Counted as its status line goes out; with none, as 500 when it failed,
                    # else as 200: its client went away first (vLLM has sent a stream's status
                    # line by then, and answers a cancelled request with 200).
                    counted = CountedSend(send, self.requests, method, handler, None)
                    try:
                        await route(scope, receive, counted)
                    except BaseException:
                        counted.start(500)
                        raise
                    if not counted.started:
                        counted.start(200)
                    return
                error = MethodNotAllowed("Method Not Allowed")
                self.requests.count(method, error.status, handler)
                body = route.endpoint.error_body(error)
                await _send_error(send, error.status, body, [(b"allow", b"POST")])
                return
            await self.api(scope, receive, self.requests.send(send, scope))
            return
        await self.api(scope, receive, send)

    def _with_headers(self, scope: Scope, send: Send) -> Send:
        """``send`` adding the pod headers and, when enabled, ``X-Request-Id`` (the client's,
        or a new one) to a successful response."""
        extra = list(self.http.pod_headers)
        if self.http.request_id_headers:
            given = request_headers(scope).get(REQUEST_ID_HEADER)
            extra.append((REQUEST_ID_HEADER, (given or str(uuid.uuid4())).encode()))
        if not extra:
            return send

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        return send_with_headers


def _authorized(headers: dict[bytes, str], api_key: str) -> bool:
    """Whether the request carries the key: ``Authorization: Bearer <key>`` (OpenAI clients)
    or ``x-api-key: <key>`` (Anthropic clients)."""
    bearer = headers.get(b"authorization", "")
    if bearer[:7].lower() == "bearer " and secrets.compare_digest(bearer[7:], api_key):
        return True
    return secrets.compare_digest(headers.get(b"x-api-key", ""), api_key)


async def _send_error(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def pod_headers(environ: Mapping[str, str], port: int) -> list[tuple[bytes, bytes]]:
    """``x-inference-pod`` and ``-port`` from ``POD_NAME``, ``x-inference-namespace`` from
    ``POD_NAMESPACE`` (HDR-1)."""
    headers = []
    if environ.get("POD_NAME"):
        headers.append((b"x-inference-pod", environ["POD_NAME"].encode()))
        headers.append((b"x-inference-port", str(port).encode()))
    if environ.get("POD_NAMESPACE"):
        headers.append((b"x-inference-namespace", environ["POD_NAMESPACE"].encode()))
    return headers


def _text(body: dict[str, object], key: str) -> str:
    """A string field of a JSON body ("" when absent); 400 when of another type."""
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string", param=key)
    return value


def create_app(plan: RuntimePlan, environ: Mapping[str, str] | None = None) -> LlmsimApp:
    """The application serving ``plan``; the pod's identity comes from ``environ`` (default:
    the process's environment)."""
    environ = os.environ if environ is None else environ
    simulator = Simulator(plan, environ)
    engine = simulator.engine
    server = plan.scenario.server

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await simulator.startup()
        try:
            yield
        finally:
            await simulator.shutdown()

    api = FastAPI(
        title="llmsim", version=__version__, docs_url="/docs", redoc_url=None, lifespan=lifespan
    )
    http = HttpSettings(
        max_body_bytes=server.max_request_body_size_mb * MB,
        pod_headers=pod_headers(environ, plan.port),
        request_id_headers=server.enable_request_id_headers,
    )
    endpoints: list[Endpoint[Any]] = [
        ChatEndpoint(),
        CompletionsEndpoint(),
        ResponsesEndpoint(),
        MessagesEndpoint(),
        GenerateEndpoint(engine.tokenizer),
    ]
    pacer = TokenPacer()
    lean = {endpoint.path: GenerationRoute(endpoint, engine, http, pacer) for endpoint in endpoints}
    document_api(api, lean)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return Response(
            error_body(exc.status_code, str(exc.detail)),
            status_code=exc.status_code,
            media_type="application/json",
            headers=exc.headers,
        )

    @api.exception_handler(LlmsimError)
    async def _llmsim_error(request: Request, exc: LlmsimError) -> Response:
        return Response(body_for(exc), status_code=exc.status, media_type="application/json")

    @api.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return Response(error_body(400, str(exc.errors())), 400, media_type="application/json")

    @api.get("/health")
    async def health() -> Response:
        """Liveness: 200 with an empty body while the process serves."""
        return Response(status_code=200)

    @api.get("/health/ready")
    async def ready() -> Response:
        """Readiness: 503 until ``startup-duration`` has passed since start, then 200."""
        return Response(status_code=200 if simulator.ready() else 503)

    @api.get("/query")
    async def query() -> JSONResponse:
        """Each data-parallel rank's engine id, stable for the run (API-HEALTH-1)."""
        ranks = range(server.data_parallel_size)
        return JSONResponse(
            {str(r): {"engine_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{plan.seed}-{r}"))}
             for r in ranks}
        )  # fmt: skip

    api.include_router(tokenize_router(engine))
    api.include_router(embeddings_router(engine))

    @api.get("/metrics")
    async def metrics() -> Response:
        """vLLM's Prometheus metrics (or the scenario's fake ones)."""
        return Response(simulator.metrics_text(), media_type=CONTENT_TYPE_LATEST)

    @api.get("/admin/config")
    async def get_config() -> JSONResponse:
        """The configuration in force, with upstream's flat key names (CFG-ADMIN-1)."""
        return JSONResponse(config_view(simulator.plan, engine.phases.active_name()))

    @api.post("/admin/config")
    async def post_config(request: Request) -> JSONResponse:
        """Change failure, latency or fake-metric settings from the next request on."""
        updates = parse_object(await request.body(), "admin config")
        simulator.apply(updated_plan(simulator.plan, updates))
        return JSONResponse(config_view(simulator.plan, engine.phases.active_name()))

    @api.post("/fake_metrics", status_code=204)
    async def post_fake_metrics(request: Request) -> Response:
        """Deprecated: a partial fake-metrics update, as ``{"fake-metrics": …}`` in admin."""
        partial = parse_object(await request.body(), "fake metrics")
        simulator.apply(updated_plan(simulator.plan, {FAKE_METRICS_KEY: partial}))
        return Response(status_code=204)

    @api.get("/v1/models")
    async def models() -> JSONResponse:
        """The served names, then the adapters (API-MODELS-1)."""
        current = engine.plan
        created = int(time.time())
        card = {"object": "model", "created": created, "owned_by": "vllm"}
        base = [
            {
                "id": name,
                **card,
                "root": current.model.name,
                "parent": None,
                "max_model_len": current.model.max_model_len,
            }
            for name in current.model.served_names
        ]
        adapters = [
            {"id": name, **card, "root": path or name, "parent": current.model.display_name}
            for name, path in engine.loras.items()
        ]
        return JSONResponse({"object": "list", "data": base + adapters})

    @api.post("/sleep")
    async def sleep() -> Response:
        """Put the engine to sleep (dev mode and enable-sleep-mode only); always 200."""
        simulator.sleep()
        return Response(status_code=200)

    @api.post("/wake_up")
    async def wake_up(request: Request) -> Response:
        """Wake up; ``?tags=kv_cache`` (or no tags) brings the KV cache back; always 200."""
        engine.wake_up(request.query_params.getlist("tags"))
        return Response(status_code=200)

    @api.get("/is_sleeping")
    async def is_sleeping() -> JSONResponse:
        """Whether the engine sleeps."""
        return JSONResponse({"is_sleeping": engine.sleeping})

    @api.post("/v1/load_lora_adapter")
    async def load_lora_adapter(request: Request) -> PlainTextResponse:
        """Make an adapter available under ``lora_name`` (LORA-3, as vLLM answers)."""
        body = parse_object(await request.body(), "load lora")
        name, path = _text(body, "lora_name"), _text(body, "lora_path")
        engine.loras.load(name, path)
        return PlainTextResponse(f"Success: LoRA adapter '{name}' added successfully.")

    @api.post("/v1/unload_lora_adapter")
    async def unload_lora_adapter(request: Request) -> PlainTextResponse:
        """Stop serving an adapter; requests already accepted for it still finish."""
        body = parse_object(await request.body(), "unload lora")
        name = _text(body, "lora_name")
        engine.loras.unload(name)
        engine.scheduler.retire(name)
        return PlainTextResponse(f"Success: LoRA adapter '{name}' removed successfully.")

    return LlmsimApp(api, lean, simulator, http, server.api_key)
