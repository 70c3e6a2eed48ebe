"""The served OpenAPI document: FastAPI's, completed with what FastAPI cannot see.

The generation endpoints are lean ASGI routes outside FastAPI, and the FastAPI handlers read
their bodies themselves, so FastAPI's own document lists neither those routes nor any request
body. This module adds both, with body schemas taken from the pydantic models the server
parses (under ``components/schemas``), and documents answers loosely: 200 and the error shape
of 4xx. It only describes the API: it must not change how any request is served.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from llmsim.scenario.failures import FailuresSection
from llmsim.scenario.fake_metrics import FakeMetrics
from llmsim.scenario.sections import LatencySection
from llmsim.server.chat import PATH as CHAT_PATH
from llmsim.server.completions import PATH as COMPLETIONS_PATH
from llmsim.server.embeddings import EmbeddingRequest
from llmsim.server.generate import PATH as GENERATE_PATH
from llmsim.server.generation import GenerationRoute
from llmsim.server.messages import PATH as MESSAGES_PATH
from llmsim.server.protocol import ChatCompletionRequest, CompletionRequest
from llmsim.server.responses import PATH as RESPONSES_PATH
from llmsim.server.tokenize import DetokenizeRequest, TokenizeRequest

REF = "#/components/schemas/{model}"
OPENAI_ERROR = "OpenAIError"
ANTHROPIC_ERROR = "AnthropicError"
ADMIN_CONFIG = "AdminConfig"
LEAN_SUMMARIES = {
    CHAT_PATH: "Chat completions",
    COMPLETIONS_PATH: "Text completions",
    RESPONSES_PATH: "Responses",
    MESSAGES_PATH: "Anthropic messages",
    GENERATE_PATH: "Generate from token ids",
}


class LoadLoraAdapterRequest(BaseModel):
    """``POST /v1/load_lora_adapter``: serve the adapter at ``lora_path`` as ``lora_name``."""

    lora_name: str | None = None
    lora_path: str | None = None


class UnloadLoraAdapterRequest(BaseModel):
    """``POST /v1/unload_lora_adapter``: stop serving ``lora_name``."""

    lora_name: str | None = None


FASTAPI_BODIES: dict[tuple[str, str], type[BaseModel] | str] = {
    ("post", "/tokenize"): TokenizeRequest,
    ("post", "/detokenize"): DetokenizeRequest,
    ("post", "/v1/completions/render"): CompletionRequest,
    ("post", "/v1/chat/completions/render"): ChatCompletionRequest,
    ("post", "/v1/embeddings"): EmbeddingRequest,
    ("post", "/v1/load_lora_adapter"): LoadLoraAdapterRequest,
    ("post", "/v1/unload_lora_adapter"): UnloadLoraAdapterRequest,
    ("post", "/fake_metrics"): FakeMetrics,
    ("post", "/admin/config"): ADMIN_CONFIG,
}
"""The body each FastAPI route that reads its own body parses: a model, or a schema's name."""

ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    OPENAI_ERROR: {
        "type": "object",
        "description": "An error, in the OpenAI shape.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                    "code": {"type": "integer"},
                },
            }
        },
    },
    ANTHROPIC_ERROR: {
        "type": "object",
        "description": "An error, in the Anthropic shape.",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
WAKE_UP_TAGS = {
    "name": "tags",
    "in": "query",
    "required": False,
    "description": "What to wake up; kv_cache (or no tags) brings the KV cache back.",
    "schema": {"type": "array", "items": {"type": "string"}},
    "style": "form",
    "explode": True,
}


def document_api(api: FastAPI, lean_routes: Mapping[str, GenerationRoute[Any]]) -> None:
    """Make ``api`` serve the complete document of its own routes and of ``lean_routes``
    (built once, on first use)."""
    build: Callable[[], dict[str, Any]] = api.openapi
    lean_models = {path: route.endpoint.request_model for path, route in lean_routes.items()}

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = completed(build(), lean_models)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def completed(
    document: dict[str, Any], lean_models: Mapping[str, type[BaseModel]]
) -> dict[str, Any]:
    """A copy of FastAPI's ``document`` with the lean routes (``lean_models``: each path's
    body model), the request bodies and the error answers added."""
    document = copy.deepcopy(document)
    models: set[type[BaseModel]] = {LatencySection, FailuresSection, *lean_models.values()}
    models |= {model for model in FASTAPI_BODIES.values() if not isinstance(model, str)}
    ordered = sorted(models, key=lambda model: (model.__module__, model.__qualname__))
    inputs: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "validation") for m in ordered]
    refs, top = models_json_schema(inputs, ref_template=REF)
    ref_of = {model: refs[(model, "validation")] for model in ordered}
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(top.get("$defs", {}))
    schemas.update(ERROR_SCHEMAS)
    schemas[ADMIN_CONFIG] = _admin_config(schemas, ref_of)

    def ref(model: type[BaseModel] | str) -> dict[str, Any]:
        if isinstance(model, str):
            return {"$ref": REF.format(model=model)}
        return dict(ref_of[model])

    paths: dict[str, Any] = {}
    for path, model in lean_models.items():
        error = ANTHROPIC_ERROR if path == MESSAGES_PATH else OPENAI_ERROR
        summary = LEAN_SUMMARIES.get(path, path)
        paths[path] = {"post": _lean_operation(path, summary, ref(model), error)}
    for path, item in document.get("paths", {}).items():
        paths.setdefault(path, item)  # a lean route is served before FastAPI's
    document["paths"] = paths
    for (method, path), body in FASTAPI_BODIES.items():
        operation = paths.get(path, {}).get(method)
        if operation is not None:
            operation["requestBody"] = _json_body(ref(body))
    wake_up = paths.get("/wake_up", {}).get("post")
    if wake_up is not None:
        wake_up["parameters"] = [WAKE_UP_TAGS]
    for item in paths.values():
        for method, operation in item.items():
            if method == "post" and "4XX" not in operation["responses"]:
                operation["responses"].pop("422", None)
                operation["responses"]["4XX"] = _error_response(OPENAI_ERROR)
    _drop_unused_validation_schemas(document)
    return document


def _admin_config(
    schemas: dict[str, Any], ref_of: Mapping[type[BaseModel], dict[str, Any]]
) -> dict[str, Any]:
    """``POST /admin/config``: any of the latency and failure keys and ``fake-metrics``; the
    sections' own schemas leave ``schemas``, only their keys are part of the API."""
    properties: dict[str, Any] = {}
    for section in (LatencySection, FailuresSection):
        name = ref_of[section]["$ref"].rsplit("/", 1)[-1]
        properties.update(schemas.pop(name)["properties"])
    properties["fake-metrics"] = dict(ref_of[FakeMetrics])
    return {
        "type": "object",
        "description": (
            "A partial update of the configuration in force; an integer duration counts "
            "nanoseconds, a string one is read as in scenario files."
        ),
        "properties": properties,
        "additionalProperties": False,
    }


def _lean_operation(path: str, summary: str, body: dict[str, Any], error: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "operationId": "post" + path.replace("/", "_"),
        "requestBody": _json_body(body),
        "responses": {
            "200": {
                "description": "The answer: a JSON body, or server-sent events when streamed.",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            },
            "4XX": _error_response(error),
        },
    }


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _error_response(name: str) -> dict[str, Any]:
    return {
        "description": "A bad request.",
        "content": {"application/json": {"schema": {"$ref": REF.format(model=name)}}},
    }


def _drop_unused_validation_schemas(document: dict[str, Any]) -> None:
    """FastAPI's 422 schemas, once no answer refers to them (the server answers 400)."""
    schemas = document["components"]["schemas"]
    if REF.format(model="HTTPValidationError") not in repr(document["paths"]):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
