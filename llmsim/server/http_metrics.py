"""vLLM's HTTP request counter: ``http_requests_total{method, status, handler}``.

vLLM's API server counts every HTTP request with prometheus-fastapi-instrumentator's defaults:
``handler`` is the route's path template ("none" for a path no route matches), ``status`` the
status grouped as ``2xx``/``4xx``/``5xx``, ``method`` the request's. It excludes the handlers its
patterns match (regular expressions searched anywhere in the handler, as the instrumentator
does), and its API-key check runs outside the instrumentator, so a 401 for a missing key is not
counted. Here a request is counted once, when its status line goes out: ``CountedSend`` looks at
``http.response.start`` only, and the lean generation routes unwrap it (``Connection``), so
stream frames go straight to the server. This module counts; it must not change a response.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # connection.py imports this module
    from llmsim.server.connection import Message, Scope, Send

EXCLUDED_HANDLERS = (
    "/metrics",
    "/health",
    "/health/decode",
    "/load",
    "/ping",
    "/version",
    "/server_info",
)
"""vLLM's ``excluded_handlers`` (vllm/entrypoints/serve/instrumentator/metrics.py)."""
UNTEMPLATED = "none"
"""The handler of a request no route matched (the instrumentator's ``should_group_untemplated``)."""
_EXCLUDED = re.compile("|".join(EXCLUDED_HANDLERS))
_GROUPS = tuple(f"{digit}xx" for digit in range(10))


def is_excluded(handler: str) -> bool:
    """Whether vLLM leaves requests to ``handler`` (or to this unmatched path) uncounted."""
    return _EXCLUDED.search(handler) is not None


class HttpRequests:
    """The counts of one rank: ``(method, status group, handler)`` -> requests."""

    __slots__ = ("_routes", "totals")

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str, str], int] = {}
        self._routes: dict[int, str | None] = {}
        """``id`` of a FastAPI route (they live as long as the app) -> its label."""

    def count(self, method: str, status: int, handler: str | None) -> None:
        """One response with ``status`` to ``handler`` (None: an excluded handler)."""
        if handler is not None:
            key = (method, _GROUPS[status // 100], handler)
            self.totals[key] = self.totals.get(key, 0) + 1

    def handler(self, path: str) -> str | None:
        """The label of a route's ``path`` template; None when vLLM excludes it."""
        return None if is_excluded(path) else path

    def handler_of(self, scope: Scope) -> str | None:
        """The handler label of a request FastAPI served: the template of the route Starlette
        matched (also for a 405), else "none"; None when excluded."""
        route = scope.get("route")
        if route is None:
            return None if is_excluded(scope["path"]) else UNTEMPLATED
        try:
            return self._routes[id(route)]
        except KeyError:
            path = getattr(route, "path", None)
            handler = self.handler(path) if isinstance(path, str) else UNTEMPLATED
            self._routes[id(route)] = handler
            return handler

    def send(self, send: Send, scope: Scope) -> CountedSend:
        """``send``, counting the response of a FastAPI route as it starts."""
        return CountedSend(send, self, scope["method"], None, scope)


class CountedSend:
    """An ASGI ``send`` that counts the response when its ``http.response.start`` goes out.

    ``Connection`` takes the wrapped ``send`` out and calls ``start`` itself, so that the
    frames of a stream do not pass through here."""

    __slots__ = ("_handler", "_method", "_requests", "_scope", "send", "started")

    def __init__(
        self,
        send: Send,
        requests: HttpRequests,
        method: str,
        handler: str | None,
        scope: Scope | None,
    ):
        self.send = send
        self.started = False
        self._requests = requests
        self._method = method
        self._handler = handler
        self._scope = scope
        """The scope to find the matched route in (FastAPI's routes), else None."""

    async def __call__(self, message: Message) -> None:
        if not self.started and message["type"] == "http.response.start":
            self.start(message["status"])
        await self.send(message)

    def start(self, status: int) -> None:
        """Count the response (once): its status line is going out."""
        if not self.started:
            self.started = True
            scope = self._scope
            handler = self._handler if scope is None else self._requests.handler_of(scope)
            self._requests.count(self._method, status, handler)
