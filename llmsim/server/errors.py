"""The one place where errors become OpenAI-shaped error bodies (ERR-1, ERR-2).

``{"error": {"message", "type", "param", "code"}}`` with ``code`` the HTTP status, as upstream
and vLLM write it. Pydantic validation errors of request bodies become 400s here.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from llmsim.errors import BadRequest, LlmsimError, error_type_for_status

PARSE_ERROR_PREFIX = "Failed to read and parse request body, "


def error_body(
    status: int, message: str, param: str | None = None, kind: str | None = None
) -> bytes:
    """The JSON error body for ``status`` (``kind``: the type, default the status's)."""
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": kind or error_type_for_status(status),
                "param": param,
                "code": status,
            }
        }
    )


def body_for(error: LlmsimError) -> bytes:
    """The JSON error body for an llmsim error."""
    return error_body(error.status, error.message, error.param, error.error_type)


def from_validation_error(exc: ValidationError) -> BadRequest:
    """A 400 that names each offending field of a request body."""
    errors = exc.errors(include_url=False)
    for error in errors:
        if error["type"] == "json_invalid":
            detail = error.get("ctx", {}).get("error", error["msg"])
            return BadRequest(f"{PARSE_ERROR_PREFIX}{detail}")
    messages = [_describe(error) for error in errors]
    first_loc = errors[0]["loc"] if errors else ()
    param = str(first_loc[0]) if first_loc else None
    return BadRequest("; ".join(messages), param=param)


def _describe(error: Any) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "missing":
        message = "field required"
    if error["type"] == "model_type" and not loc:
        return PARSE_ERROR_PREFIX + "the body must be a JSON object"
    return f"{loc}: {message}" if loc else message
