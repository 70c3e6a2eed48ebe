"""The ASGI application: FastAPI for everything, lean routes for the generation endpoints.

FastAPI serves health, models, error handling and the OpenAPI document. The generation endpoints
are dispatched before FastAPI by an exact path lookup to ``GenerationRoute`` apps, which parse
bodies once and write pre-encoded frames straight to ASGI ``send``: FastAPI's per-request
machinery would cost more than the simulation itself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmsim import __version__
from llmsim.errors import BadRequest, LlmsimError, MethodNotAllowed
from llmsim.plan.plan import RuntimePlan
from llmsim.server.admin import FAKE_METRICS_KEY, config_view, parse_object, updated_plan
from llmsim.server.chat import ChatEndpoint
from llmsim.server.completions import CompletionsEndpoint
from llmsim.server.connection import ASGIApp, Receive, Scope, Send
from llmsim.server.embeddings import embeddings_router
from llmsim.server.errors import body_for, error_body
from llmsim.server.generate import GenerateEndpoint
from llmsim.server.generation import GenerationRoute
from llmsim.server.messages import MessagesEndpoint
from llmsim.server.simulator import Simulator
from llmsim.server.tokenize import tokenize_router

MB = 1024 * 1024
DEFAULT_MAX_BODY_MB = 4


class LlmsimApp:
    """Routes generation endpoints to lean ASGI apps and everything else to FastAPI."""

    def __init__(self, api: FastAPI, lean_routes: dict[str, ASGIApp], simulator: Simulator):
        self.api = api
        self.lean_routes = lean_routes
        self.simulator = simulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self.lean_routes.get(scope["path"])
            if route is not None:
                if scope["method"] == "POST":
                    await route(scope, receive, send)
                    return
                error = MethodNotAllowed("Method Not Allowed")
                await send(
                    {
                        "type": "http.response.start",
                        "status": error.status,
                        "headers": [(b"content-type", b"application/json"), (b"allow", b"POST")],
                    }
                )
                await send({"type": "http.response.body", "body": body_for(error)})
                return
        await self.api(scope, receive, send)


def _text(body: dict[str, object], key: str) -> str:
    """A string field of a JSON body ("" when absent); 400 when of another type."""
    value = body.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string", param=key)
    return value


def create_app(plan: RuntimePlan) -> LlmsimApp:
    """The application serving ``plan``."""
    simulator = Simulator(plan)
    engine = simulator.engine

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
    limit = DEFAULT_MAX_BODY_MB * MB
    lean: dict[str, ASGIApp] = {
        ChatEndpoint.path: GenerationRoute(ChatEndpoint(), engine, limit),
        CompletionsEndpoint.path: GenerationRoute(CompletionsEndpoint(), engine, limit),
        MessagesEndpoint.path: GenerationRoute(MessagesEndpoint(), engine, limit),
        GenerateEndpoint.path: GenerationRoute(GenerateEndpoint(engine.tokenizer), engine, limit),
    }

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
        """Readiness: 200 once the server can take requests."""
        return Response(status_code=200)

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

    return LlmsimApp(api, lean, simulator)
