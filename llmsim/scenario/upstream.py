"""Every key of the upstream simulator (its command-line flags are its flat config keys), and
what each becomes in a scenario.

Most keys map one to one onto a scenario key (``max-num-seqs`` -> ``engine.max-num-seqs``).
The rest are listed with what llmsim does with them: a few turn into another scenario value
(``force-dummy-tokenizer``), some are accepted but have no effect in llmsim (the render service,
``mm-encoder-only``), which is always said in a warning, some are vLLM flags upstream itself
ignores, and some are keys older upstream versions had. This module knows no command line and no
file format: it turns one key and its (already typed) value into scenario assignments and notes.
It must not import the server.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from llmsim.scenario.units import parse_duration

Kind = Literal[
    "int", "uint", "float", "number", "str", "duration", "bool", "toggle", "list", "json"
]
"""How a value is written: ``number`` is an int or a float (percentages); ``toggle`` is a bool
with a ``--no-`` form; ``list`` takes several values; ``json`` one JSON object."""
Effect = Literal["mapped", "special", "no-effect", "ignored", "retired"]
Path = tuple[str, ...]
Level = Literal["warning", "info"]


class Required:
    """The default of a key that must be given (upstream's ``model``)."""

    def __repr__(self) -> str:
        return "required"


REQUIRED = Required()


@dataclass(frozen=True, slots=True)
class Note:
    """Something the user should know about one key: a warning or an information."""

    key: str
    level: Level
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass(frozen=True, slots=True)
class UpstreamKey:
    """One upstream flag / flat config key."""

    name: str
    kind: Kind
    default: Any
    """The upstream default, as the scenario holds it (a scenario without the key has it)."""
    path: Path | None = None
    effect: Effect = "mapped"
    note: str = ""
    """What llmsim does with a key that is not simply mapped (said when the key is given)."""
    shown_default: str | None = None
    """The default as the docs show it, when the value alone would mislead."""

    @property
    def toggle(self) -> bool:
        return self.kind == "toggle"


def _k(name: str, kind: Kind, default: Any, path: str | None = None, **extra: Any) -> UpstreamKey:
    return UpstreamKey(name, kind, default, tuple(path.split(".")) if path else None, **extra)


_NO_RENDER = (
    "has no effect: llmsim has no render-service client; prompts are tokenized by the simulated"
    " tokenizer (or by model.tokenizer when a scenario sets a real one)"
)
_IGNORED = "a vLLM flag upstream accepts and ignores; ignored"

KEYS: tuple[UpstreamKey, ...] = (
    # model and serving
    _k("model", "str", REQUIRED, "model.name", shown_default="required"),
    _k("served-model-name", "list", None, "model.served-model-name", shown_default="[model]"),
    _k("max-model-len", "int", 1024, "model.max-model-len"),
    _k("port", "int", 8000, "server.port"),
    _k("max-request-body-size-mb", "int", 4, "server.max-request-body-size-mb"),
    _k("data-parallel-size", "int", 1, "server.data-parallel-size"),
    _k("data-parallel-rank", "int", -1, "server.data-parallel-rank"),
    _k("startup-duration", "duration", 0.0, "server.startup-duration"),
    _k("enable-sleep-mode", "toggle", False, "server.enable-sleep-mode"),
    _k("enable-request-id-headers", "bool", False, "server.enable-request-id-headers"),
    _k("log-http", "bool", False, "server.log-http"),
    _k("ssl-certfile", "str", None, "server.ssl-certfile", shown_default='""'),
    _k("ssl-keyfile", "str", None, "server.ssl-keyfile", shown_default='""'),
    _k("self-signed-certs", "bool", False, "server.self-signed-certs"),
    # engine
    _k("max-num-seqs", "int", 5, "engine.max-num-seqs"),
    _k("max-waiting-queue-length", "int", 1000, "engine.max-waiting-queue-length"),
    _k("seed", "int", None, "seed", shown_default="the start time in ns"),
    # latency
    _k("latency-calculator", "str", None, "latency.latency-calculator", shown_default='""'),
    *(
        _k(name, "duration", 0.0, f"latency.{name}")
        for name in (
            "time-to-first-token",
            "time-to-first-token-std-dev",
            "inter-token-latency",
            "inter-token-latency-std-dev",
            "prefill-overhead",
            "prefill-time-per-token",
            "prefill-time-std-dev",
            "kv-cache-transfer-latency",
            "kv-cache-transfer-latency-std-dev",
            "kv-cache-transfer-time-per-token",
            "kv-cache-transfer-time-std-dev",
            "time-to-generate-image",
            "time-to-generate-image-std-dev",
        )
    ),
    _k("time-factor-under-load", "float", 1.0, "latency.time-factor-under-load"),
    # responses
    _k("mode", "str", "random", "responses.mode"),
    _k("omni", "toggle", False, "responses.omni"),
    _k("image-emission-rate", "number", 0, "responses.image-emission-rate"),
    _k("dataset-path", "str", None, "responses.dataset.path", shown_default='""'),
    _k("dataset-url", "str", None, "responses.dataset.url", shown_default='""'),
    _k("dataset-in-memory", "bool", False, "responses.dataset.in-memory"),
    _k("dataset-table-name", "str", "llmd", "responses.dataset.table"),
    _k("default-embedding-dimensions", "int", 384, "model.default-embedding-dimensions"),
    *(
        _k(name, kind, default, f"responses.tools.{name}")
        for name, kind, default in cast(
            tuple[tuple[str, Kind, Any], ...],
            (
                ("max-tool-call-integer-param", "int", 100),
                ("min-tool-call-integer-param", "int", 0),
                ("max-tool-call-number-param", "float", 100),
                ("min-tool-call-number-param", "float", 0),
                ("max-tool-call-array-param-length", "int", 5),
                ("min-tool-call-array-param-length", "int", 1),
                ("tool-call-not-required-param-probability", "number", 50),
                ("object-tool-call-not-required-field-probability", "number", 50),
                ("tool-call-extra-call-probability", "number", 45),
                ("skip-tool-validation", "bool", False),
            ),
        )
    ),
    # lora
    _k("max-loras", "int", 1, "lora.max-loras"),
    _k("max-cpu-loras", "int", None, "lora.max-cpu-loras", shown_default="max-loras"),
    _k("lora-modules", "list", [], "lora.lora-modules"),
    # kv cache and events
    _k("enable-kvcache", "bool", False, "kv-cache.enable-kvcache"),
    _k("kv-cache-size", "int", 1024, "kv-cache.kv-cache-size"),
    _k("block-size", "int", 16, "kv-cache.block-size"),
    _k("hash-seed", "str", None, "kv-cache.hash-seed", shown_default='""'),
    _k("global-cache-hit-threshold", "float", 0.0, "kv-cache.global-cache-hit-threshold"),
    _k("zmq-endpoint", "str", "tcp://127.0.0.1:5557", "kv-cache.zmq-endpoint"),
    _k("event-batch-size", "int", 16, "kv-cache.event-batch-size"),
    _k("use-vllm-map-event-format", "bool", False, "kv-cache.use-vllm-map-event-format"),
    _k("kv-events-replay-endpoint", "str", "", "kv-cache.kv-events-replay-endpoint"),
    _k("kv-events-replay-queue-size", "int", 1024, "kv-cache.kv-events-replay-queue-size"),
    # failures and metrics
    _k("failure-injection-rate", "number", 0, "failures.failure-injection-rate"),
    _k("failure-types", "list", [], "failures.failure-types"),
    _k("fake-metrics", "json", None, "metrics.fake-metrics"),
    _k("fake-metrics-refresh-interval", "duration", 0.1, "metrics.fake-metrics-refresh-interval"),
    # turned into another scenario value
    _k(
        "force-dummy-tokenizer",
        "bool",
        False,
        "model.tokenizer",
        effect="special",
        note="true sets model.tokenizer to simulated",
    ),
    _k(
        "engine",
        "str",
        "vllm",
        effect="special",
        note="vllm; sglang is accepted, but llmsim serves vLLM's API, metrics and KV events",
    ),
    # sglang's names for vLLM's settings (upstream's sglang engine)
    _k(
        "context-length",
        "int",
        1024,
        "model.max-model-len",
        effect="special",
        note="sglang's max-model-len",
    ),
    _k(
        "max-running-requests",
        "int",
        5,
        "engine.max-num-seqs",
        effect="special",
        note="sglang's max-num-seqs",
    ),
    _k(
        "max-queued-requests",
        "int",
        1000,
        "engine.max-waiting-queue-length",
        effect="special",
        note="sglang's max-waiting-queue-length",
    ),
    # accepted, no effect in llmsim: always warned about
    _k("render-url", "str", "", effect="no-effect", note=_NO_RENDER),
    _k("render-timeout", "duration", 30.0, effect="no-effect", note=_NO_RENDER),
    _k("mm-render-timeout", "duration", 60.0, effect="no-effect", note=_NO_RENDER),
    _k(
        "mm-encoder-only",
        "toggle",
        False,
        effect="no-effect",
        note="has no effect: llmsim does not simulate an encoder-only (EC transfer) instance",
    ),
    # vLLM flags upstream ignores
    _k("mm-processor-kwargs", "str", "", effect="ignored", note=_IGNORED),
    _k("ec-transfer-config", "str", "", effect="ignored", note=_IGNORED),
    _k("enforce-eager", "toggle", False, effect="ignored", note=_IGNORED),
    _k("enable-prefix-caching", "toggle", False, effect="ignored", note=_IGNORED),
    _k("tensor-parallel-size", "int", 1, effect="ignored", note=_IGNORED),
    # keys of older upstream versions
    _k(
        "tokenizers-cache-dir",
        "str",
        "",
        effect="retired",
        note="a key of older upstream versions; ignored (real tokenizers: model.tokenizer)",
    ),
    _k(
        "zmq-max-connect-attempts",
        "uint",
        0,
        effect="retired",
        note="a key of older upstream versions; ignored (the publisher retries every second)",
    ),
)

BY_NAME: dict[str, UpstreamKey] = {key.name: key for key in KEYS}
MAPPED_BY_PATH: dict[Path, UpstreamKey] = {
    key.path: key for key in KEYS if key.path is not None and key.effect == "mapped"
}
"""The upstream key of each scenario path that has one."""

ENGINES = ("vllm", "sglang")
NESTED_BLOCKS = ("kvcache", "latencies")
"""Newer upstream versions also accept these keys grouped under a block of this name."""


@dataclass
class Assigned:
    """What one upstream key set: scenario (path, value) pairs, and notes to tell."""

    values: list[tuple[Path, Any]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)


def assign(key: UpstreamKey, value: Any) -> Assigned:
    """The scenario assignments and notes of upstream ``key`` set to ``value``. The value is
    already typed (a YAML value, or a converted flag); scenario validation checks mapped values,
    this function checks the ones that reach no scenario key. Raises ``ValueError``."""
    out = Assigned()
    if key.effect == "mapped":
        out.values.append((key.path, _mapped_value(key, value)))  # type: ignore[arg-type]
        return out
    checked = check_kind(key.kind, value)
    if key.name == "force-dummy-tokenizer":
        if checked:
            out.values.append((("model", "tokenizer"), "simulated"))
    elif key.name == "engine":
        if checked not in ENGINES:
            raise ValueError(f"unknown engine {checked!r}: use vllm (or sglang)")
        if checked == "sglang":
            out.notes.append(
                Note(
                    key.name,
                    "warning",
                    "llmsim simulates vLLM: its settings are used, but the API, metric names"
                    " and KV events stay vLLM's",
                )
            )
    elif key.effect == "special" and key.path is not None:
        out.values.append((key.path, checked))
    elif key.effect == "no-effect":
        if key.kind != "toggle" or checked:
            out.notes.append(Note(key.name, "warning", key.note))
    elif key.effect == "ignored":
        out.notes.append(Note(key.name, "info", key.note))
    else:
        out.notes.append(Note(key.name, "warning", key.note))
    return out


_EMPTY_IS_UNSET = frozenset({"ssl-certfile", "ssl-keyfile", "dataset-url"})


def _mapped_value(key: UpstreamKey, value: Any) -> Any:
    """A mapped value as the scenario takes it: for a few keys upstream's empty string is what
    the scenario writes as no value."""
    if value == "" and key.name in _EMPTY_IS_UNSET:
        return None
    return value


def check_kind(kind: Kind, value: Any) -> Any:
    """``value`` if it is of ``kind`` (durations as given); ``ValueError`` otherwise."""
    if kind in ("bool", "toggle"):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
    elif kind in ("int", "uint"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if kind == "uint" and value < 0:
            raise ValueError(f"must not be negative, got {value}")
    elif kind in ("float", "number"):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(f"expected a number, got {value!r}")
    elif kind == "duration":
        parse_duration(value)
    elif kind == "str" and not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def settle_dataset(data: MutableMapping[str, Any]) -> list[Note]:
    """Upstream reads ``dataset-table-name`` and ``dataset-in-memory`` only with a
    ``dataset-path``; an empty path means no dataset. Drops a dataset without a path (unless a
    URL asks for one: the scenario then says the path is missing)."""
    responses = data.get("responses")
    if not isinstance(responses, MutableMapping):
        return []
    dataset = responses.get("dataset")
    if not isinstance(dataset, Mapping) or dataset.get("path"):
        return []
    if dataset.get("url"):
        return []
    del responses["dataset"]
    flat = {"table": "dataset-table-name", "in-memory": "dataset-in-memory"}
    return [
        Note(flat[name], "info", "ignored without a dataset-path, as upstream does")
        for name in flat
        if name in dataset
    ]


_SNAKE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)+$")


def misspelled(name: str) -> str | None:
    """The upstream key a snake_case spelling stands for (upstream's YAML ignores it)."""
    if _SNAKE.match(name):
        kebab = name.replace("_", "-")
        if kebab in BY_NAME:
            return kebab
    return None
