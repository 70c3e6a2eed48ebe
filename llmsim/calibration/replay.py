"""Replaying a vLLM request trace against an OpenAI-compatible server, and comparing latencies.

Each traced request is sent at its recorded arrival (counted from the first, times
``time_scale``) as a streamed ``POST /v1/completions`` whose prompt is a list of exactly
``prompt_tokens`` token ids and which asks for exactly ``completion_tokens`` tokens
(``ignore_eos``). Token-id prompts have the same length on any server, whatever its tokenizer;
the ids are small (valid in any vocabulary) and each request's first id differs from the
others', so that no prompt shares a cached prefix with another. The client measures the time to
the first streamed token (TTFT), to the end of the stream (E2E) and the mean inter-token time
``(E2E - TTFT) / (tokens - 1)``, divides them by ``time_scale``, and compares them with the
recorded ones. A request that fails (an HTTP error, a timeout, a broken stream) is counted and
reported; it never stops the replay. httpx is imported only here (``llmsim[bench]``).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import orjson

from llmsim.calibration.stats import error_pct, percentile
from llmsim.calibration.traces import TraceRecord

if TYPE_CHECKING:
    import httpx

FIRST_ID = 1000
"""Token ids start here: above the special tokens of common vocabularies."""
ID_RANGE = 28000
"""Token ids stay below ``FIRST_ID + ID_RANGE`` (29000): valid in any vocabulary of 32k or
more (Llama 2, Mistral, GPT-2, Qwen, Llama 3, ...)."""
CONNECT_TIMEOUT = 10.0


class ReplayError(Exception):
    """The replay cannot start (no server, no model); the command line exits with 2."""

    exit_code = 2


def prompt_ids(index: int, length: int) -> list[int]:
    """The prompt of request ``index``: ``length`` token ids, the first one unique to the
    request (for fewer than ``ID_RANGE`` requests; the second one too beyond that)."""
    if length <= 0:
        return []
    ids = [FIRST_ID + index % ID_RANGE]
    if length > 1:
        ids.append(FIRST_ID + (index // ID_RANGE) % ID_RANGE)
    ids.extend(FIRST_ID + (index * 7919 + 104729 * k) % ID_RANGE for k in range(2, length))
    return ids


@dataclass(frozen=True, slots=True)
class Measurement:
    """One replayed request: what was recorded and what the server did."""

    index: int
    arrival: float
    """The recorded arrival (seconds from the first request)."""
    prompt_tokens: int
    completion_tokens: int
    recorded_ttft: float
    recorded_itl: float | None
    recorded_e2e: float
    error: str | None = None
    """Why it failed (None: it succeeded)."""
    ttft: float | None = None
    itl: float | None = None
    e2e: float | None = None
    tokens: int | None = None
    """Completion tokens the server reported (or streamed)."""
    served_prompt_tokens: int | None = None
    """Prompt tokens the server reported (None: no usage)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        def pct(measured: float | None, recorded: float | None) -> float | None:
            if measured is None or recorded is None or recorded == 0:
                return None
            return 100.0 * (measured - recorded) / recorded

        return {
            "index": self.index,
            "arrival": self.arrival,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "ok": self.ok,
            "error": self.error,
            "tokens": self.tokens,
            "served_prompt_tokens": self.served_prompt_tokens,
            "recorded": {
                "ttft": self.recorded_ttft,
                "itl": self.recorded_itl,
                "e2e": self.recorded_e2e,
            },
            "measured": {"ttft": self.ttft, "itl": self.itl, "e2e": self.e2e},
            "error_pct": {
                "ttft": pct(self.ttft, self.recorded_ttft),
                "itl": pct(self.itl, self.recorded_itl),
                "e2e": pct(self.e2e, self.recorded_e2e),
            },
        }


@dataclass(frozen=True, slots=True)
class Aggregate:
    """Recorded against measured over the requests that succeeded: mean and p90."""

    count: int
    recorded_mean: float
    measured_mean: float
    recorded_p90: float
    measured_p90: float

    @property
    def mean_error_pct(self) -> float:
        return error_pct(self.measured_mean, self.recorded_mean)

    @property
    def p90_error_pct(self) -> float:
        return error_pct(self.measured_p90, self.recorded_p90)

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "recorded_mean": self.recorded_mean,
            "measured_mean": self.measured_mean,
            "mean_error_pct": _finite(self.mean_error_pct),
            "recorded_p90": self.recorded_p90,
            "measured_p90": self.measured_p90,
            "p90_error_pct": _finite(self.p90_error_pct),
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(slots=True)
class ReplayReport:
    """The whole replay: each request, and the aggregate."""

    url: str
    model: str
    time_scale: float
    duration: float
    measurements: list[Measurement] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return sum(1 for m in self.measurements if m.ok)

    @property
    def failed(self) -> int:
        return len(self.measurements) - self.succeeded

    @property
    def failures(self) -> dict[str, int]:
        """How many requests failed, by reason."""
        return dict(Counter(m.error for m in self.measurements if m.error is not None))

    def aggregate(self) -> dict[str, Aggregate]:
        """TTFT, ITL and E2E, recorded against measured, over the requests that succeeded."""
        done = [m for m in self.measurements if m.ok]
        pairs: dict[str, list[tuple[float, float]]] = {
            "ttft": [(m.recorded_ttft, m.ttft) for m in done if m.ttft is not None],
            "itl": [
                (m.recorded_itl, m.itl)
                for m in done
                if m.itl is not None and m.recorded_itl is not None
            ],
            "e2e": [(m.recorded_e2e, m.e2e) for m in done if m.e2e is not None],
        }
        result = {}
        for name, values in pairs.items():
            if not values:
                continue
            recorded = [r for r, _ in values]
            measured = [v for _, v in values]
            result[name] = Aggregate(
                len(values),
                statistics.fmean(recorded),
                statistics.fmean(measured),
                percentile(recorded, 90),
                percentile(measured, 90),
            )
        return result

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "model": self.model,
            "time_scale": self.time_scale,
            "duration": self.duration,
            "requests": len(self.measurements),
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failures": self.failures,
            "metrics": {name: value.as_dict() for name, value in self.aggregate().items()},
        }


def base_url(url: str) -> str:
    """``http://host:port`` from what users type (a trailing ``/`` or ``/v1`` is dropped)."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if "://" not in url:
        url = "http://" + url
    return url


def _root_cause(exc: BaseException) -> str:
    """What the operating system said (``connection refused``), found along the chain of
    causes; the error's own message if none says."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, OSError) and seen.strerror:
            return str(seen.strerror).lower()
        seen = seen.__cause__ or seen.__context__
    return str(exc) or "connection failed"


def _connect_problem(url: str, exc: Exception) -> str:
    import httpx

    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {url}: {_root_cause(exc)}"
    if isinstance(exc, httpx.TimeoutException):
        return f"cannot connect to {url}: no answer within {CONNECT_TIMEOUT:g} s"
    return f"cannot reach {url}: {exc}"


async def find_model(client: httpx.AsyncClient, url: str, model: str | None) -> str:
    """``model``, or the first model the server lists; ``ReplayError`` when the server cannot
    be reached (or lists nothing and no model was given)."""
    import httpx

    try:
        response = await client.get(f"{url}/v1/models", timeout=CONNECT_TIMEOUT)
    except httpx.HTTPError as exc:
        raise ReplayError(_connect_problem(url, exc)) from None
    if model is not None:
        return model
    if response.status_code != 200:
        raise ReplayError(
            f"{url}/v1/models answered HTTP {response.status_code}: give the model with --model"
        )
    try:
        data = response.json()["data"]
        return str(data[0]["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise ReplayError(f"{url}/v1/models lists no model: give the model with --model") from None


def _request_body(model: str, index: int, record: TraceRecord) -> dict[str, Any]:
    return {
        "model": model,
        "prompt": prompt_ids(index, record.prompt_tokens),
        "max_tokens": record.completion_tokens,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def _one(
    client: httpx.AsyncClient,
    url: str,
    model: str,
    index: int,
    record: TraceRecord,
    start: float,
    time_scale: float,
    timeout: float,
) -> Measurement:
    import httpx

    recorded = Measurement(
        index=index,
        arrival=record.arrival,
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        recorded_ttft=record.ttft,
        recorded_itl=record.itl,
        recorded_e2e=record.e2e,
    )
    body = orjson.dumps(_request_body(model, index, record))
    delay = start + record.arrival * time_scale - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)
    sent = time.perf_counter()
    first: float | None = None
    chunks = 0
    usage: int | None = None
    prompt_usage: int | None = None
    try:
        async with asyncio.timeout(timeout):
            async with client.stream(
                "POST",
                f"{url}/v1/completions",
                content=body,
                headers={"content-type": "application/json"},
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    return _failed(recorded, f"HTTP {response.status_code}")
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    try:
                        event = orjson.loads(payload)
                    except orjson.JSONDecodeError:
                        return _failed(recorded, "a stream event that is not JSON")
                    if not isinstance(event, dict):
                        continue
                    if "error" in event:
                        return _failed(recorded, "an error in the stream")
                    if event.get("choices"):
                        chunks += 1
                        if first is None:
                            first = time.perf_counter()
                    counts = event.get("usage")
                    if isinstance(counts, dict):
                        if isinstance(counts.get("completion_tokens"), int):
                            usage = counts["completion_tokens"]
                        if isinstance(counts.get("prompt_tokens"), int):
                            prompt_usage = counts["prompt_tokens"]
        end = time.perf_counter()
    except TimeoutError:
        return _failed(recorded, f"timeout ({timeout:g} s)")
    except httpx.HTTPError as exc:
        return _failed(recorded, f"connection error ({type(exc).__name__})")
    except Exception as exc:  # whatever else goes wrong, the replay goes on
        return _failed(recorded, f"client error ({type(exc).__name__})")
    if first is None:
        return _failed(recorded, "no token streamed")
    tokens = usage if usage is not None else chunks
    ttft = (first - sent) / time_scale
    e2e = (end - sent) / time_scale
    itl = (e2e - ttft) / (tokens - 1) if tokens >= 2 else None
    return replace(
        recorded, ttft=ttft, itl=itl, e2e=e2e, tokens=tokens, served_prompt_tokens=prompt_usage
    )


def _failed(recorded: Measurement, reason: str) -> Measurement:
    return replace(recorded, error=reason)


async def replay(
    records: Sequence[TraceRecord],
    url: str,
    model: str | None = None,
    time_scale: float = 1.0,
    timeout: float = 300.0,
    on_start: Callable[[str, int, float], None] | None = None,
) -> ReplayReport:
    """Send ``records`` to the server at ``url`` at their arrivals; measure and compare.
    ``on_start(model, requests, span)`` is told when the first request is about to go."""
    import httpx

    if time_scale <= 0:
        raise ValueError("time_scale must be positive")
    url = base_url(url)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=1000)
    timeouts = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)
    async with httpx.AsyncClient(limits=limits, timeout=timeouts) as client:
        chosen = await find_model(client, url, model)
        span = max((r.arrival for r in records), default=0.0) * time_scale
        if on_start is not None:
            on_start(chosen, len(records), span)
        start = time.perf_counter()
        measurements = await asyncio.gather(
            *(
                _one(client, url, chosen, index, record, start, time_scale, timeout)
                for index, record in enumerate(records)
            )
        )
        duration = time.perf_counter() - start
    return ReplayReport(url, chosen, time_scale, duration, list(measurements))
