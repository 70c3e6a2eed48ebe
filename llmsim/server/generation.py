"""The lean route shared by the generation endpoints: parse, check, admit, time, write.

Order as upstream (PIPE-2): body parse (400), model check (404), request checks (400), context
window (400), admission of every choice (429 when the queue is full), then the answer on each
choice's token deadlines. ``n`` copies and completion prompt lists fan out (PIPE-4): every choice
has its own slot, timeline and text. A stream's status line goes out with its first token, so
every error keeps its real status; nothing can fail after it. A client that goes away cancels
the request, which frees its queue places and running slots at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from pydantic import ValidationError

from llmsim.engine.engine import Choice, Engine, RequestState
from llmsim.engine.faults import header_error, injected_failure, rule_error
from llmsim.engine.generation import (
    FINISH_CACHE_THRESHOLD,
    FINISH_REMOTE_DECODE,
    Generation,
    Prompt,
    check_context_window,
)
from llmsim.engine.images import IMAGE_URL
from llmsim.engine.tokenizer import Tokenizer, suspends
from llmsim.engine.tools import choose_calls, validate_tools
from llmsim.errors import BadRequest, LlmsimError, ScriptedDisconnect
from llmsim.plan.plan import RuntimePlan
from llmsim.plan.rules import CompiledRule, first_match, render_reply
from llmsim.server.connection import ClientGone, Connection, Receive, Scope, Send
from llmsim.server.errors import from_validation_error
from llmsim.server.frames import usage_object
from llmsim.server.pacer import TokenPacer
from llmsim.server.protocol import GenerationRequest

IGNORE_EOS_WITHOUT_LIMIT = "Ignore_eos is true but max_completion_tokens (or max_tokens) is not set"
PREFILL_STREAMING = "Prefill does not support streaming"
CACHE_THRESHOLD_HEADER = b"x-cache-threshold-finish-reason"
RETURN_ERROR_HEADER = b"x-return-error"
SEND_IMAGE_HEADER = b"x-send-image"
REQUEST_ID_HEADER = b"x-request-id"
CONTENT_TYPE_HEADER = b"content-type"
NOT_JSON = "The request body must be JSON (Content-Type: application/json)"
TRUE_VALUES = frozenset({"1", "t", "T", "TRUE", "true", "True"})
"""Header values read as true (Go's strconv.ParseBool)."""
REMOTE_DECODE_PARAMS = {
    "do_remote_decode": False,
    "do_remote_prefill": True,
    "remote_engine_id": "DUMMY_ID",
    "remote_block_ids": ["DUMMY_ID"],
    "remote_host": "DUMMY",
    "remote_port": 1234,
    "tp_size": 1,
}
"""What a prefill instance answers in ``kv_transfer_params`` for its decode peer (API-PD-2)."""

RequestT = TypeVar("RequestT", bound=GenerationRequest)
RequestT_co = TypeVar("RequestT_co", bound=GenerationRequest, covariant=True)
log = logging.getLogger("llmsim")


@dataclass(slots=True)
class Answer(Generic[RequestT_co]):
    """Everything a response is written from: the request, its state, its prompts and its
    choices (each with its answer), and the logprobs alternatives asked for."""

    request: RequestT_co
    state: RequestState
    prompts: list[Prompt]
    choices: list[Choice]
    top: int | None

    @property
    def usage(self) -> dict[str, object]:
        """The OpenAI-shaped usage of the whole response."""
        return response_usage(self.prompts, self.choices)


class ChoiceStream(Protocol):
    """The frames of one streamed choice."""

    @property
    def first(self) -> bytes:
        """Frames sent just before the first token (a role chunk, opening events)."""
        ...

    @property
    def prepared(self) -> list[bytes] | None:
        """Ready frames, one per token, used instead of ``token`` (tool-call answers)."""
        ...

    def token(self, text: str, position: int, offset: int) -> bytes:
        """The frame carrying one token (``position`` and character ``offset`` in the answer)."""
        ...


class AnswerStream(Protocol):
    """The frames of a streamed response: one ``ChoiceStream`` per choice, then a tail."""

    @property
    def choices(self) -> Sequence[ChoiceStream]:
        """The choices' frames, in the order of the answer's choices."""
        ...

    def tail(self) -> bytes:
        """The frames after every choice has ended (finish chunks, usage, end marker)."""
        ...


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

    @property
    def max_tool_calls(self) -> int | None:
        """The most tool calls one answer may make (None: no limit)."""
        ...

    async def prompts(
        self,
        request: RequestT,
        tokenizer: Tokenizer,
        with_ids: bool,
        media_tokens: Mapping[str, int],
    ) -> list[Prompt]:
        """The request's prompts as the engine sees them, one per sub-request; their token
        ids only ``with_ids``; a media item counts ``media_tokens[kind]`` tokens."""
        ...

    def rule_prompt(self, request: RequestT) -> str:
        """The text scenario rules match and templates see as ``prompt``."""
        ...

    def tools(self, request: RequestT) -> tuple[list[dict[str, Any]], Any]:
        """The request's tools in chat shape and its ``tool_choice`` in chat form (none for
        endpoints without tools)."""
        ...

    def body(self, answer: Answer[RequestT]) -> dict[str, object]:
        """The non-streamed response body."""
        ...

    def stream(self, answer: Answer[RequestT]) -> AnswerStream:
        """The streamed response's frames."""
        ...

    def error_body(self, error: LlmsimError) -> bytes:
        """The body of an error response, in the API's own error shape."""
        ...


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """What the server's HTTP layer adds around every generation request."""

    max_body_bytes: int
    pod_headers: list[tuple[bytes, bytes]]
    """Pod identity headers of successful responses (HDR-1)."""
    request_id_headers: bool = False
    """Take the request id from ``X-Request-Id`` and echo it (HDR-2)."""


class GenerationRoute(Generic[RequestT]):
    """An ASGI app serving one generation endpoint from the engine."""

    def __init__(
        self,
        endpoint: Endpoint[RequestT],
        engine: Engine,
        http: HttpSettings,
        pacer: TokenPacer,
    ):
        self.endpoint = endpoint
        self.engine = engine
        self.http = http
        self.pacer = pacer
        self._failed_templates: set[int] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = Connection(receive, send)
        try:
            await self._serve(conn, scope)
        except ClientGone:
            pass
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not conn.disconnected or task is None:
                raise
            task.uncancel()
        except LlmsimError as error:
            await conn.respond(error.status, self.endpoint.error_body(error))
        finally:
            conn.close()

    async def _serve(self, conn: Connection, scope: Scope) -> None:
        body = await conn.read_body(self.http.max_body_bytes)
        headers = request_headers(scope)
        content_type = headers.get(CONTENT_TYPE_HEADER)
        if content_type is not None and not is_json(content_type):
            raise BadRequest(f"{NOT_JSON}, not {content_type}")
        try:
            request = self.endpoint.request_model.model_validate_json(body)
        except ValidationError as exc:
            raise from_validation_error(exc) from None
        engine = self.engine
        state = engine.start()
        plan = state.plan
        conn.headers = self.http.pod_headers
        if self.http.request_id_headers:
            given = headers.get(REQUEST_ID_HEADER)
            if given:
                state.request_id = given
            conn.headers = [*conn.headers, (REQUEST_ID_HEADER, state.request_id.encode())]
        returned = headers.get(RETURN_ERROR_HEADER)
        if returned is not None:
            raise header_error(returned.encode("latin-1"))
        model_name = plan.model.name
        injected = injected_failure(
            plan.failure_injection_rate, plan.failure_types, state.rng, model_name
        )
        if injected is not None:
            raise injected
        state.adapter = engine.resolve_model(request.model)
        prompt_text = self.endpoint.rule_prompt(request)
        rule = first_match(plan.rules, self.endpoint.path, request.model, prompt_text, headers)
        if rule is not None:
            if rule.error is not None:
                raise rule_error(rule.error, model_name)
            state.latency = rule.latency
            state.stall_after_tokens = rule.stall_after_tokens
            state.stall = rule.stall
        copies = request.choices
        limit = request.output_limit()
        min_tokens = request.min_output(limit)
        if request.ignore_eos and limit is None:
            raise BadRequest(IGNORE_EOS_WITHOUT_LIMIT, param="ignore_eos")
        if request.remote_decode and request.stream:
            raise BadRequest(PREFILL_STREAMING, param="stream")
        top = request.logprobs_k()
        threshold = request.hit_threshold(plan.kv.global_cache_hit_threshold if plan.kv else 0.0)
        prompts = await self.endpoint.prompts(
            request, engine.tokenizer, engine.needs_token_ids, plan.model.media_tokens
        )
        for prompt in prompts:
            check_context_window(prompt.tokens, limit, plan.model.max_model_len)
            if suspends(prompt.text):
                state.use_own_rng()
        state.max_tokens = limit
        state.remote_prefill = request.remote_prefill
        state.cache_hit_threshold = threshold
        state.force_cache_threshold = headers.get(CACHE_THRESHOLD_HEADER, "") in TRUE_VALUES
        if request.seed is not None:
            engine.reseed(state, request.seed, prompts[0].text)
        tools, tool_choice = self.endpoint.tools(request)
        tool_settings = plan.scenario.responses.tools
        if tools and not tool_settings.skip_tool_validation:
            validate_tools(tools)
        replying = rule if rule is not None and rule.reply is not None else None
        send_image = headers.get(SEND_IMAGE_HEADER, "") in TRUE_VALUES
        single = len(prompts) * copies == 1
        plans: list[tuple[int, Prompt, random.Random, Generation]] = []
        for p, prompt in enumerate(prompts):
            for j in range(copies):
                rng = state.rng if single else random.Random(state.rng.getrandbits(64))
                if replying is not None:
                    text = self._reply(replying, request, prompt_text, rng, limit)
                    generation = engine.generator.given(text, limit)
                elif tools and (calls := choose_calls(rng, tools, tool_choice, tool_settings)):
                    generation = engine.generator.calls(calls[: self.endpoint.max_tool_calls])
                elif (
                    plan.response_mode != "echo"
                    and (fixed := request.structured_text(rng, tool_settings)) is not None
                ):
                    generation = engine.generator.given(fixed, limit)
                else:
                    generation = engine.generator.generate(
                        rng, prompt, limit, bool(request.ignore_eos), min_tokens, plan.response_mode
                    )
                generation = self._chat_extras(rng, generation, request, plan, send_image, limit)
                if request.remote_decode:
                    generation = replace(generation, finish_reason=FINISH_REMOTE_DECODE)
                plans.append((p * copies + j, prompt, rng, generation))
        tickets = engine.reserve(
            state,
            [prompt for _, prompt, _, _ in plans],
            [max(len(generation.tokens), 1) for _, _, _, generation in plans],
        )
        try:
            choices = [
                Choice(index, prompt, rng, generation, ticket)
                for (index, prompt, rng, generation), ticket in zip(plans, tickets, strict=True)
            ]
            if not all(ticket.granted for ticket in tickets):
                conn.watch()
            answer = Answer(request, state, prompts, choices, top)
            if request.stream:
                cut = rule.disconnect_after_tokens if rule is not None else None
                await self._stream(conn, answer, cut)
            else:
                await self._complete(conn, answer)
        finally:
            for ticket in tickets:
                ticket.give_back()

    def _chat_extras(
        self,
        rng: random.Random,
        generation: Generation,
        request: GenerationRequest,
        plan: RuntimePlan,
        send_image: bool,
        limit: int | None,
    ) -> Generation:
        """Reasoning before a text answer and an omni image after it, where the scenario
        asks for them and the endpoint has them (OMNI-1)."""
        settings = plan.scenario.responses
        reasoning = settings.reasoning
        if (
            reasoning is not None
            and reasoning.enabled
            and request.thinking
            and not generation.tool_calls
        ):
            generation = self.engine.generator.think(rng, generation, reasoning, limit)
        if settings.omni and request.makes_images:
            rate = settings.image_emission_rate
            if send_image or (rate > 0 and rng.randint(1, 100) <= rate):
                generation = replace(generation, image=IMAGE_URL)
        return generation

    def _reply(
        self,
        rule: CompiledRule,
        request: GenerationRequest,
        prompt: str,
        rng: random.Random,
        max_tokens: int | None,
    ) -> str:
        """A rule's templated reply for one choice; a render error is a 500 naming the rule,
        logged once per rule."""
        context = {
            "request": request.model_dump(mode="json", exclude_none=True),
            "prompt": prompt,
            "model": request.model,
            "rng": rng,
            "max_tokens": max_tokens,
            "phase": self.engine.phases.active_name(),
            "lorem": lambda count: self.engine.generator.lorem(rng, int(count)),
        }
        try:
            return render_reply(rule, context)
        except Exception as exc:
            message = f"{rule.label}: reply template failed: {type(exc).__name__}: {exc}"
            if rule.index not in self._failed_templates:
                self._failed_templates.add(rule.index)
                log.error("%s", message)
            raise LlmsimError(message, status=500) from None

    async def _complete(self, conn: Connection, answer: Answer[RequestT]) -> None:
        state, choices = answer.state, answer.choices
        if len(choices) == 1:
            await self._wait_for_last_token(conn, state, choices[0])
        else:
            await _each(self._wait_for_last_token(conn, state, c) for c in choices)
        await conn.respond_json(200, self.endpoint.body(answer))

    async def _wait_for_last_token(
        self, conn: Connection, state: RequestState, choice: Choice
    ) -> None:
        count = max(len(choice.generation.tokens), 1)
        async with self.engine.running(state, choice) as timeline:
            await timeline.until_tokens(conn, count)
            if choice.generation.image is not None:
                await conn.sleep_until(timeline.last + _image_delay(self.engine, state, choice))

    async def _stream(self, conn: Connection, answer: Answer[RequestT], cut: int | None) -> None:
        stream = self.endpoint.stream(answer)
        state, choices = answer.state, answer.choices
        if len(choices) == 1:
            last = await self._stream_choice(conn, state, choices[0], stream.choices[0], cut)
        else:
            await _each(
                self._stream_choice(conn, state, c, f, cut, hold_last=False)
                for c, f in zip(choices, stream.choices, strict=True)
            )
            last = b""
        await conn.end(last + stream.tail())

    async def _stream_choice(
        self,
        conn: Connection,
        state: RequestState,
        choice: Choice,
        frames: ChoiceStream,
        cut: int | None = None,
        hold_last: bool = True,
    ) -> bytes:
        """Write the choice's frames on their deadlines; the last one is returned instead of
        written when ``hold_last``, so that it leaves with the stream's tail. A cache_threshold
        answer writes nothing: its finish chunk comes with the tail (API-CHAT-6). With ``cut``
        the connection is closed once that many tokens are out (a scripted disconnect)."""
        async with self.engine.running(state, choice) as timeline:
            generation = choice.generation
            tokens = generation.tokens
            if generation.finish_reason == FINISH_CACHE_THRESHOLD:
                return b""
            prepared = frames.prepared
            first = prepared[0] if prepared else frames.token(tokens[0], 0, 0) if tokens else b""
            pending = frames.first + first
            await timeline.until_first(conn)
            if len(tokens) > 1:
                if cut is not None and cut <= 0:
                    await _write(conn, pending, 0, cut)
                send = await conn.body_sender()
                await send({"type": "http.response.body", "body": pending, "more_body": True})
                conn.watch()
                stop = len(tokens) if cut is None else cut
                later = _later_frames(frames, tokens, prepared)
                paced = timeline.pace(self.pacer, send, later, len(tokens) - 1, stop)
                position, pending = await paced
                if position < len(tokens) - 1:
                    await _write(conn, pending, position, cut)
            written = max(len(tokens) - 1, 0)
            if generation.image is not None:
                await _write(conn, pending, written, cut)
                await conn.sleep_until(timeline.last + _image_delay(self.engine, state, choice))
                return b""
            if hold_last:
                if cut is not None and written >= cut:
                    await _write(conn, b"", written, cut)
                return pending
            await _write(conn, pending, written, cut)
            return b""


def _later_frames(
    frames: ChoiceStream, tokens: list[str], prepared: list[bytes] | None
) -> Iterator[bytes]:
    """The frames of tokens 1 onwards, each made when the pacer needs it."""
    if prepared:
        yield from prepared[1:]
        return
    offset = len(tokens[0])
    for position in range(1, len(tokens)):
        token = tokens[position]
        yield frames.token(token, position, offset)
        offset += len(token)


async def _write(conn: Connection, frame: bytes, written: int, cut: int | None) -> None:
    """Write a frame, unless ``cut`` tokens are already out: then drop the connection."""
    if cut is not None and written >= cut:
        if not conn.started:
            await conn.write(b"")
        raise ScriptedDisconnect
    await conn.write(frame)


def _image_delay(engine: Engine, state: RequestState, choice: Choice) -> float:
    """The time from a choice's last token to its image (``time-to-generate-image``)."""
    latency = state.latency or state.plan.latency
    return latency.time_to_generate_image.sample(engine.timing_rng(state, choice, latency))


def is_json(content_type: str) -> bool:
    """Whether a ``Content-Type`` names JSON (``application/json`` or ``application/*+json``,
    parameters allowed), as FastAPI decides whether to read a body as JSON."""
    kind = content_type.partition(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def request_headers(scope: Scope) -> dict[bytes, str]:
    """The request's headers: lower-case names, values as text."""
    return {key.lower(): value.decode("latin-1") for key, value in scope.get("headers", ())}


def response_usage(prompts: list[Prompt], choices: list[Choice]) -> dict[str, object]:
    """Usage of a whole response: each prompt counted once, completions summed; cached tokens
    of each prompt's first choice. A cache_threshold answer has ``prompt_tokens_details: null``
    (API-CHAT-2)."""
    if len(choices) == 1:
        choice = choices[0]
        generation = choice.generation
        threshold = generation.finish_reason == FINISH_CACHE_THRESHOLD
        return usage_object(
            choice.prompt.tokens, generation.count, None if threshold else choice.cached_tokens
        )
    cached: dict[int, int] = {}
    for choice in choices:
        cached.setdefault(id(choice.prompt), choice.cached_tokens)
    threshold = any(c.generation.finish_reason == FINISH_CACHE_THRESHOLD for c in choices)
    return usage_object(
        sum(p.tokens for p in prompts),
        sum(c.generation.count for c in choices),
        None if threshold else sum(cached.values()),
    )


async def _each(coroutines: Any) -> None:
    """Run the coroutines concurrently; one failing cancels the others (PIPE-4)."""
    async with asyncio.TaskGroup() as group:
        for coroutine in coroutines:
            group.create_task(coroutine)
