"""The upstream simulator's command-line flags, parsed as upstream (spf13/pflag) parses them.

Forms: ``--flag value`` and ``--flag=value``; a bool flag alone means true and ``--flag=false``
sets false (``--flag false`` still sets true, as upstream: the stray value is reported); toggles
also have a ``--no-flag`` form; the list flags (``served-model-name``, ``lora-modules``,
``failure-types``, ``fake-metrics``) take every following argument up to the next ``--flag``
(or one ``--flag=value``), may be repeated, and given empty reset the value. Go's klog flags are
accepted: ``--v=N`` / ``-v N`` sets the log level, the others are ignored. ``--config FILE``
names an upstream flat config (or a scenario). Values are converted by kind here; what they mean
and their ranges are checked by the scenario model. This module turns argv into scenario
assignments; it reads no file and no environment.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmsim.scenario.upstream import BY_NAME, KEYS, Kind, Note, UpstreamKey, assign

LIST_KINDS = ("list", "json")
BOOL_KINDS = ("bool", "toggle")

KLOG_FLAGS: dict[str, Kind] = {
    "v": "int",
    "vmodule": "str",
    "logtostderr": "bool",
    "alsologtostderr": "bool",
    "log_dir": "str",
    "log_file": "str",
    "log_file_max_size": "uint",
    "skip_headers": "bool",
    "skip_log_headers": "bool",
    "stderrthreshold": "str",
    "add_dir_header": "bool",
    "one_output": "bool",
    "log_backtrace_at": "str",
    "legacy_stderr_threshold_behavior": "bool",
}
"""Go klog's flags (upstream registers them all); only ``v`` has an effect here."""
DEFAULT_VERBOSITY = 2
DEBUG_VERBOSITY = 4
"""klog verbosity from which llmsim logs at DEBUG (below: INFO)."""

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_SHORT_V = re.compile(r"^-v(=?-?\d+)?$")


class FlagError(Exception):
    """A command line upstream would refuse: an unknown flag or a value of the wrong kind."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """One scenario key set by one source (``source`` names it: ``--max-num-seqs``)."""

    path: tuple[str, ...]
    value: Any
    source: str


@dataclass
class ParsedArgs:
    """An upstream command line: the scenario keys it sets and everything else it says."""

    assignments: list[Assignment] = field(default_factory=list)
    config: str | None = None
    verbosity: int | None = None
    notes: list[Note] = field(default_factory=list)
    help: bool = False

    @property
    def log_level(self) -> int:
        """The Python logging level klog's ``v`` stands for."""
        verbosity = DEFAULT_VERBOSITY if self.verbosity is None else self.verbosity
        return logging.DEBUG if verbosity >= DEBUG_VERBOSITY else logging.INFO


def parse_go_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not a boolean (true, false, 1, 0, t, f)")


def parse_go_int(text: str) -> int:
    """Go's ``strconv.ParseInt(text, 0, 64)``: decimal, ``0x``, ``0o``, ``0b``."""
    try:
        return int(text, 0)
    except ValueError:
        try:
            return int(text, 10)
        except ValueError:
            raise ValueError("not an integer") from None


def convert(kind: Kind, text: str) -> Any:
    """A flag's text as a value of ``kind`` (durations stay text: the scenario reads them)."""
    if kind in ("int", "uint"):
        value = parse_go_int(text)
        if kind == "uint" and value < 0:
            raise ValueError("must not be negative")
        return value
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError("not a number") from None
    if kind == "number":
        try:
            return parse_go_int(text)
        except ValueError:
            return convert("float", text)
    if kind in BOOL_KINDS:
        return parse_go_bool(text)
    return text


def _flag_names() -> list[str]:
    names = [key.name for key in KEYS]
    names += [f"no-{key.name}" for key in KEYS if key.toggle]
    return [*names, "config", *KLOG_FLAGS]


def _unknown(name: str) -> FlagError:
    close = difflib.get_close_matches(name, _flag_names(), n=1)
    hint = f" (did you mean --{close[0]}?)" if close else ""
    return FlagError(f"unknown flag: --{name}{hint}")


def _invalid(flag: str, raw: object, reason: str) -> FlagError:
    return FlagError(f'invalid argument "{raw}" for "{flag}" flag: {reason}')


def takes_values(arg: str) -> int:
    """How many following arguments flag ``arg`` (``--name`` or ``-v``) takes: 0, 1, or -1
    for every argument up to the next ``--flag``. Unknown flags take none."""
    if "=" in arg:
        return 0
    name = arg.lstrip("-")
    if arg.startswith("-") and not arg.startswith("--"):
        return 1 if arg == "-v" else 0
    if name == "config" or KLOG_FLAGS.get(name, "bool") not in BOOL_KINDS:
        return 1
    key = BY_NAME.get(name) or BY_NAME.get(name.removeprefix("no-"))
    if key is None or key.kind in BOOL_KINDS:
        return 0
    return -1 if key.kind in LIST_KINDS else 1


def is_bool_word(arg: str) -> bool:
    """Whether ``arg`` is a word Go reads as a boolean (``true``, ``0``, ``F``, …)."""
    return arg in _TRUE or arg in _FALSE


def is_value_end(arg: str) -> bool:
    """Whether ``arg`` ends the values of a list flag (upstream: the next ``--`` argument)."""
    return arg.startswith("--") or bool(_SHORT_V.match(arg))


def parse_args(argv: Sequence[str]) -> ParsedArgs:
    """Parse an upstream command line; ``FlagError`` when upstream would refuse it."""
    parsed = ParsedArgs()
    lists: dict[str, tuple[str, list[str]]] = {}
    args = list(argv)
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            _stray(parsed, args[index:])
            break
        if arg in ("-h", "--help"):
            parsed.help = True
            continue
        if not arg.startswith("-") or arg == "-":
            _stray(parsed, [arg])
            continue
        name, inline = _split(arg)
        if name == "config":
            parsed.config, index = _value(arg, inline, args, index)
            continue
        if name in KLOG_FLAGS:
            index = _klog(parsed, arg, name, inline, args, index)
            continue
        negated = name.startswith("no-") and name not in BY_NAME
        key = BY_NAME.get(name.removeprefix("no-") if negated else name)
        if key is None or (negated and not key.toggle):
            raise _unknown(name)
        flag = f"--{name}"
        if key.kind in BOOL_KINDS:
            value = True
            if inline is not None:
                value = _converted(key.kind, flag, inline)
            else:
                index = _stray_bool(parsed, flag, args, index)
            _set(parsed, key, flag, (not value) if negated else value, inline)
        elif key.kind in LIST_KINDS:
            values = lists.setdefault(key.name, (flag, []))[1]
            if inline is not None:
                values.append(inline)
            else:
                while index < len(args) and not is_value_end(args[index]):
                    values.append(args[index])
                    index += 1
            values[:] = [value for value in values if value != ""]
        else:
            text, index = _value(arg, inline, args, index)
            _set(parsed, key, flag, _converted(key.kind, flag, text), text)
    for name, (flag, values) in lists.items():
        _set_list(parsed, BY_NAME[name], flag, values)
    return parsed


def _split(arg: str) -> tuple[str, str | None]:
    """(flag name, inline value or None) of ``--name[=value]`` or ``-v[=]N``."""
    if arg.startswith("--"):
        name, sep, inline = arg[2:].partition("=")
        return name, inline if sep else None
    body = arg[1:]
    if body.startswith("v") and _SHORT_V.match(arg):
        rest = body[1:].removeprefix("=")
        return "v", rest or None
    raise FlagError(f"unknown shorthand flag: {body[0]!r} in {arg}")


def _value(arg: str, inline: str | None, args: list[str], index: int) -> tuple[str, int]:
    if inline is not None:
        return inline, index
    if index >= len(args):
        raise FlagError(f"flag needs an argument: {arg}")
    return args[index], index + 1


def _converted(kind: Kind, flag: str, text: str) -> Any:
    try:
        return convert(kind, text)
    except ValueError as exc:
        raise _invalid(flag, text, str(exc)) from None


def _klog(
    parsed: ParsedArgs, arg: str, name: str, inline: str | None, args: list[str], index: int
) -> int:
    kind = KLOG_FLAGS[name]
    if kind in BOOL_KINDS:
        text = inline if inline is not None else "true"
    else:
        text, index = _value(arg, inline, args, index)
    value = _converted(kind, f"--{name}", text)
    if name == "v":
        parsed.verbosity = value
    else:
        parsed.notes.append(
            Note(f"--{name}", "info", "a klog flag; llmsim logs with Python logging; ignored")
        )
    return index


def _stray_bool(parsed: ParsedArgs, flag: str, args: list[str], index: int) -> int:
    """Upstream's bool flags take no separate value: ``--flag false`` leaves ``false`` behind
    (and the flag set). A true or false word right after one is taken and reported."""
    if index >= len(args) or not is_bool_word(args[index]):
        return index
    word = args[index]
    if word in _FALSE:
        parsed.notes.append(
            Note(
                flag,
                "warning",
                f"takes no separate value: '{word}' is left out and the flag sets true, as"
                f" upstream; write {flag}={word}",
            )
        )
    return index + 1


def _stray(parsed: ParsedArgs, args: list[str]) -> None:
    for arg in args:
        parsed.notes.append(Note(arg, "warning", "unexpected argument, ignored (as upstream)"))


def _set(parsed: ParsedArgs, key: UpstreamKey, flag: str, value: Any, raw: object) -> None:
    try:
        assigned = assign(key, value)
    except ValueError as exc:
        raise _invalid(flag, raw, str(exc)) from None
    parsed.assignments += [Assignment(path, item, flag) for path, item in assigned.values]
    parsed.notes += [Note(flag, note.level, note.message) for note in assigned.notes]


def _set_list(parsed: ParsedArgs, key: UpstreamKey, flag: str, values: list[str]) -> None:
    """A list flag's values; given with none, it resets the key."""
    if key.kind == "list":
        _set(parsed, key, flag, values if values else key.default, " ".join(values))
        return
    if not values:
        _set(parsed, key, flag, None, "")
        return
    if len(values) > 1:
        parsed.notes.append(Note(flag, "warning", "takes one JSON object; the first is read"))
    try:
        document = json.loads(values[0])
    except json.JSONDecodeError as exc:
        raise _invalid(flag, values[0], f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise _invalid(flag, values[0], "expected a JSON object")
    _set(parsed, key, flag, document, values[0])


def help_text(prog: str) -> str:
    """``--help``: every flag, its scenario key and its default."""
    lines = [
        f"Usage: {prog} [--config FILE] [--flag value ...]",
        "",
        "The upstream llm-d-inference-sim command line, served by llmsim. Each flag sets the",
        "scenario key shown (see docs/upstream-flags.md). Precedence: flag > environment",
        "(SIM_MODEL, PYTHONHASHSEED, LLMSIM_*) > --config file > default.",
        "",
        "  --config FILE  an upstream flat YAML config (or an llmsim scenario)",
    ]
    for key in KEYS:
        target = ".".join(key.path) if key.path else key.effect
        spelled = f"--{key.name}" + (f", --no-{key.name}" if key.toggle else "")
        default = key.shown_default or json.dumps(key.default)
        lines.append(f"  {spelled}  {key.kind} -> {target} (default {default})")
    lines.append("  --v N, -v N  klog verbosity: 4 and above log at DEBUG (default 2)")
    return "\n".join(lines) + "\n"


def split_args(
    args: Sequence[str], own_values: frozenset[str], own_switches: frozenset[str]
) -> tuple[list[str], list[str]]:
    """Split a command line between a program's own options (``own_values`` take a value,
    ``own_switches`` none; both as ``--name``) and positionals, and the upstream flags among
    them, each kept with the values it takes."""
    own: list[str] = []
    upstream: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        name = arg.partition("=")[0]
        if arg == "--":
            own += args[index - 1 :]
            break
        if name in own_values:
            own.append(arg)
            if "=" not in arg and index < len(args):
                own.append(args[index])
                index += 1
        elif name in own_switches or not arg.startswith("-") or arg == "-":
            own.append(arg)
        else:
            upstream.append(arg)
            count = takes_values(arg)
            if count == -1:
                while index < len(args) and not is_value_end(args[index]):
                    upstream.append(args[index])
                    index += 1
            elif index < len(args) and (
                count == 1 or ("=" not in arg and is_bool_word(args[index]))
            ):
                upstream.append(args[index])
                index += 1
    return own, upstream
