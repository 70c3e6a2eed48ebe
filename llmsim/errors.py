"""The exception hierarchy of llmsim.

Every error a request can meet carries its HTTP status, its OpenAI error type and, where one
field is at fault, the parameter name. The server maps these to error bodies in one place; this
module knows nothing about HTTP frameworks.
"""

from __future__ import annotations

_TYPE_BY_STATUS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    413: "BadRequestError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}


def error_type_for_status(status: int) -> str:
    """The OpenAI error type name upstream uses for an HTTP status (ERR-2)."""
    if status >= 500:
        return "InternalServerError"
    return _TYPE_BY_STATUS.get(status, "APIConnectionError")


class LlmsimError(Exception):
    """Base of all errors that become an API error response."""

    status: int = 500

    def __init__(self, message: str, *, param: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if status is not None:
            self.status = status

    @property
    def error_type(self) -> str:
        """The OpenAI error type for this error's status."""
        return error_type_for_status(self.status)


class BadRequest(LlmsimError):
    """The request is malformed or asks for something impossible (400)."""

    status = 400


class NotFound(LlmsimError):
    """The request names something that does not exist, such as a model (404)."""

    status = 404


class Unauthorized(LlmsimError):
    """The request lacks the API key the server requires (401)."""

    status = 401


class MethodNotAllowed(LlmsimError):
    """The path exists but not with this HTTP method (405)."""

    status = 405


class PayloadTooLarge(LlmsimError):
    """The request body exceeds the configured limit (413)."""

    status = 413


class QueueFull(LlmsimError):
    """The engine's waiting queue is full (429)."""

    status = 429


class ScriptedDisconnect(Exception):
    """A scenario rule closes the connection mid-stream (``stream.disconnect-after-tokens``)."""


class StartupError(Exception):
    """The server cannot start with this plan in this environment (e.g. a missing POD_IP)."""


class ScenarioError(Exception):
    """A scenario could not be loaded or validated; carries every problem found."""

    def __init__(self, problems: list[ScenarioProblem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


class ScenarioProblem:
    """One located problem in a scenario file: ``file:line:col: key.path: message``."""

    __slots__ = ("col", "file", "key", "line", "message")

    def __init__(self, file: str, line: int, col: int, key: str, message: str):
        self.file = file
        self.line = line
        self.col = col
        self.key = key
        self.message = message

    def __str__(self) -> str:
        key = f"{self.key}: " if self.key else ""
        if self.line == 0:  # a source without lines: a flag or an environment variable
            return f"{self.file}: {key}{self.message}"
        return f"{self.file}:{self.line}:{self.col}: {key}{self.message}"

    def as_dict(self) -> dict[str, object]:
        """A JSON-friendly form for ``llmsim validate --format json``."""
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "key": self.key,
            "message": self.message,
        }
