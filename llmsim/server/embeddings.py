"""``/v1/embeddings`` (API-EMB-1): deterministic fake vectors made from the inputs' token ids.

Each vector follows upstream's formula and is then normalised to unit length (DIFF-5); values
are float32, sent as JSON numbers or as base64 of their little-endian bytes. As upstream, the
endpoint is not queued, metered or subject to failure injection; it must not become so here.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from llmsim.engine.engine import Engine
from llmsim.errors import BadRequest
from llmsim.server.errors import from_validation_error

DEFAULT_DIMENSIONS = 384
MAX_DIMENSIONS = 65536
MAX_VALUES = 1 << 20
"""The most vector values one request may ask for: they are computed on the event loop."""
MAX_TOKEN_ID = 2**32 - 1
INPUT_REQUIRED = "input is required and must be a non-empty string or array"
EMPTY_STRING = "input cannot be an empty string"


class EmbeddingRequest(BaseModel):
    """The OpenAI embeddings request; ``user`` and unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    input: StrictStr | list[StrictStr | StrictInt | list[StrictInt]] | None = None
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: StrictInt | None = None


def _parse(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def _checked_ids(ids: list[int]) -> list[int]:
    """``ids`` with negative ids as 0; 400 when one does not fit in 32 bits."""
    if any(i > MAX_TOKEN_ID for i in ids):
        raise BadRequest(f"token ids must be at most {MAX_TOKEN_ID}", param="input")
    return [max(i, 0) for i in ids]


def _dimensions(value: int | None, default: int = DEFAULT_DIMENSIONS) -> int:
    if value is None:
        return default
    if value < 1:
        raise BadRequest("dimensions must be at least 1", param="dimensions")
    if value > MAX_DIMENSIONS:
        raise BadRequest(f"dimensions must be at most {MAX_DIMENSIONS}", param="dimensions")
    return value


def embedding_vector(ids: list[int], dimensions: int) -> tuple[list[float], bytes]:
    """The unit-length float32 vector of token ids ``ids`` (zeros if none), as Python floats
    and as little-endian float32 bytes; both hold exactly the same values."""
    n = len(ids)
    if n == 0:
        values = [0.0] * dimensions
    else:
        head = [2 * (t % 1024) / 1024 - 1 for t in ids[:dimensions]]
        if dimensions <= n:
            values = head
        else:
            cycle = [2 * (t % 256) / 256 - 1 for t in ids]
            values = head + (cycle * -(-dimensions // n))[n:dimensions]
        norm = math.sqrt(math.fsum(v * v for v in values))
        if norm > 0:
            values = [v / norm for v in values]
    packed = struct.pack(f"<{dimensions}f", *values)
    return list(struct.unpack(f"<{dimensions}f", packed)), packed


def embeddings_router(engine: Engine) -> APIRouter:
    """The route, taking text inputs' token ids from ``engine``'s tokenizer."""
    router = APIRouter()

    async def token_ids(value: str | list[Any] | None) -> list[list[int]]:
        """The token ids of each input; 400 for empty or mixed inputs."""
        if not value:
            raise BadRequest(INPUT_REQUIRED, param="input")
        if isinstance(value, str):
            return [await engine.tokenizer.encode_async(value)]
        if all(isinstance(item, str) for item in value):
            if any(item == "" for item in value):
                raise BadRequest(EMPTY_STRING, param="input")
            return [await engine.tokenizer.encode_async(item) for item in value]
        if all(isinstance(item, int) for item in value):
            return [_checked_ids(value)]
        if all(isinstance(item, list) for item in value):
            if any(not item for item in value):
                raise BadRequest(INPUT_REQUIRED, param="input")
            return [_checked_ids(item) for item in value]
        raise BadRequest(INPUT_REQUIRED, param="input")

    @router.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        """One deterministic unit-length vector per input, in input order."""
        body: EmbeddingRequest = _parse(EmbeddingRequest, await request.body())
        if body.model:
            engine.resolve_model(body.model)
        dimensions = _dimensions(
            body.dimensions, engine.plan.scenario.model.default_embedding_dimensions
        )
        inputs = await token_ids(body.input)
        if len(inputs) * dimensions > MAX_VALUES:
            raise BadRequest(
                f"{len(inputs)} inputs x {dimensions} dimensions is more than {MAX_VALUES} "
                "values in one request",
                param="input",
            )
        as_base64 = body.encoding_format == "base64"
        data: list[dict[str, Any]] = []
        for index, ids in enumerate(inputs):
            values, packed = embedding_vector(ids, dimensions)
            embedding: list[float] | str = (
                base64.b64encode(packed).decode("ascii") if as_base64 else values
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(ids) for ids in inputs)
        return Response(
            orjson.dumps(
                {
                    "object": "list",
                    "data": data,
                    "model": body.model or engine.plan.model.display_name,
                    "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
                }
            ),
            media_type="application/json",
        )

    return router
