"""The lean route shared by the generation endpoints: parse, check, admit, time, write.

Order as upstream (PIPE-2): body parse (400), model check (404), request checks (400), context
window (400), admission (429 when the queue is full), then the answer on the request's token
deadlines. A stream's status line goes out with its first token, so every error before that
keeps its real status; nothing can fail after it. A client that goes away cancels the request,
which frees its queue place or running slot at once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Generic, Protocol, TypeVar

from pydantic import ValidationError

from llmsim.engine.engine import Engine, RequestState
from llmsim.engine.generation import Generation, Prompt, check_context_window
from llmsim.engine.tokenizer import SimulatedTokenizer
from llmsim.errors import BadRequest, LlmsimError, NotFound
from llmsim.server.connection import ClientGone, Connection, Receive, Scope, Send
from llmsim.server.errors import body_for, from_validation_error
from llmsim.server.frames import StreamFrames
from llmsim.server.protocol import GenerationRequest

IGNORE_EOS_WITHOUT_LIMIT = "Ignore_eos is true but max_completion_tokens (or max_tokens) is not set"


RequestT = TypeVar("RequestT", bound=GenerationRequest)


class Endpoint(Protocol[RequestT]):
    """What differs between generation endpoints."""

    @property
    def path(self) -> str:
        """The URL path served."""
        ...

    @property
    def request_model(self) -> type[RequestT]:
        """The request body's model."""
        ...

    def prompt(self, request: RequestT, tokenizer: SimulatedTokenizer) -> Prompt:
        """The prompt as the engine sees it."""
        ...

    def body(
        self, request_id: str, created: int, model: str, generation: Generation, prompt: Prompt
    ) -> bytes:
        """The non-streamed response body."""
        ...

    def frames(self, request_id: str, created: int, model: str) -> StreamFrames:
        """The stream frames of one response."""
        ...


class GenerationRoute(Generic[RequestT]):
    """An ASGI app serving one generation endpoint from the engine."""

    def __init__(self, endpoint: Endpoint[RequestT], engine: Engine, max_body_bytes: int):
        self.endpoint = endpoint
        self.engine = engine
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = Connection(receive, send)
        try:
            await self._serve(conn)
        except ClientGone:
            pass
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not conn.disconnected or task is None:
                raise
            task.uncancel()
        except LlmsimError as error:
            await conn.respond(error.status, body_for(error))
        finally:
            conn.close()

    async def _serve(self, conn: Connection) -> None:
        body = await conn.read_body(self.max_body_bytes)
        try:
            request = self.endpoint.request_model.model_validate_json(body)
        except ValidationError as exc:
            raise from_validation_error(exc) from None
        engine = self.engine
        plan = engine.plan
        if request.model not in plan.model.served_names:
            raise NotFound(f"The model `{request.model}` does not exist.")
        if request.choices != 1:
            raise BadRequest("n > 1 is not supported yet", param="n")
        limit = request.output_limit()
        if request.ignore_eos and limit is None:
            raise BadRequest(IGNORE_EOS_WITHOUT_LIMIT, param="ignore_eos")
        prompt = self.endpoint.prompt(request, engine.tokenizer)
        check_context_window(prompt.tokens, limit, plan.model.max_model_len)
        state = engine.start()
        generation = engine.generate(state, prompt, limit, bool(request.ignore_eos))
        if engine.would_wait():
            conn.watch()
        if request.stream:
            usage = (prompt.tokens, len(generation.tokens)) if request.include_usage else None
            await self._stream(conn, state, generation, usage)
        else:
            await self._complete(conn, state, generation, prompt)

    async def _complete(
        self, conn: Connection, state: RequestState, generation: Generation, prompt: Prompt
    ) -> None:
        async with self.engine.admission(state) as timeline:
            await conn.sleep_until(timeline.last_deadline(max(len(generation.tokens), 1)))
        body = self.endpoint.body(
            state.request_id, int(time.time()), state.plan.model.display_name, generation, prompt
        )
        await conn.respond(200, body)

    async def _stream(
        self,
        conn: Connection,
        state: RequestState,
        generation: Generation,
        usage: tuple[int, int] | None,
    ) -> None:
        async with self.engine.admission(state) as timeline:
            frames = self.endpoint.frames(
                state.request_id, int(time.time()), state.plan.model.display_name
            )
            tail = frames.tail(generation.finish_reason, usage)
            tokens = generation.tokens
            await conn.sleep_until(timeline.next_deadline())
            if not tokens:
                await conn.end(frames.first + tail)
                return
            if len(tokens) == 1:
                await conn.end(frames.first + frames.token(tokens[0]) + tail)
                return
            await conn.write(frames.first + frames.token(tokens[0]))
            last = len(tokens) - 1
            for index in range(1, last):
                await conn.sleep_until(timeline.next_deadline())
                await conn.write(frames.token(tokens[index]))
            await conn.sleep_until(timeline.next_deadline())
            await conn.end(frames.token(tokens[last]) + tail)
