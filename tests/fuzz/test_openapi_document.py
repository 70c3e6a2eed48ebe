"""The OpenAPI document describes every endpoint, with the body schema of the model it parses."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.openapi.utils import get_openapi

from llmsim.plan.compile import compile_scenario
from llmsim.scenario.loader import load_scenario_text
from llmsim.server.app import LlmsimApp, create_app
from llmsim.server.openapi import FASTAPI_BODIES

WITHOUT_BODY = {"/sleep", "/wake_up"}
"""POST routes that read no body."""


@pytest.fixture(scope="module")
def app() -> LlmsimApp:
    plan = compile_scenario(load_scenario_text("version: 1\nmodel: {name: m}\n", "doc.yaml"))
    return create_app(plan, environ={})


@pytest.fixture(scope="module")
def document(app: LlmsimApp) -> dict[str, Any]:
    return app.api.openapi()


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    prefix = "#/components/schemas/"
    ref = schema["$ref"]
    assert ref.startswith(prefix), ref
    resolved: dict[str, Any] = document["components"]["schemas"][ref.removeprefix(prefix)]
    return resolved


def body_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    body = document["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    return resolve(document, body["content"]["application/json"]["schema"])


def test_every_route_is_documented(app: LlmsimApp, document: dict[str, Any]) -> None:
    fastapi_view = get_openapi(title="llmsim", version="0", routes=app.api.routes)
    fastapi_routes = {(m, path) for path, item in fastapi_view["paths"].items() for m in item}
    lean_routes = {("post", path) for path in app.lean_routes}
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == fastapi_routes | lean_routes
    assert ("post", "/v1/embeddings") in documented  # included routers count too


def test_the_lean_routes_take_their_request_model(app: LlmsimApp, document: dict[str, Any]) -> None:
    for path, route in app.lean_routes.items():
        model = route.endpoint.request_model
        assert body_schema(document, path)["title"] == model.__name__


def test_every_post_that_reads_a_body_documents_it(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        if "post" in item and path not in WITHOUT_BODY:
            assert "requestBody" in item["post"], path
    for (_, path), model in FASTAPI_BODIES.items():
        schema = body_schema(document, path)
        assert schema.get("title", "AdminConfig") == getattr(model, "__name__", model)


def test_admin_config_lists_exactly_the_admin_keys(document: dict[str, Any]) -> None:
    from llmsim.server.admin import ADMIN_KEYS

    schema = body_schema(document, "/admin/config")
    assert set(schema["properties"]) == ADMIN_KEYS
    assert schema["additionalProperties"] is False


def test_errors_are_documented_in_each_endpoints_shape(document: dict[str, Any]) -> None:
    def error_schema(path: str) -> dict[str, Any]:
        answer = document["paths"][path]["post"]["responses"]["4XX"]
        return resolve(document, answer["content"]["application/json"]["schema"])

    assert error_schema("/v1/messages")["required"] == ["type", "error"]
    for path in ("/v1/chat/completions", "/v1/embeddings", "/admin/config"):
        assert error_schema(path)["required"] == ["error"]


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [ref for child in node.values() for ref in refs(child)]
        if isinstance(node, list):
            return [ref for child in node for ref in refs(child)]
        return []

    for ref in refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
