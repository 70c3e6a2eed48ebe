"""Build an upstream SQLite dataset from a ShareGPT-style conversation file (DS-4).

Each user turn answered by an assistant turn gives two rows with the assistant's reply, as
upstream's dataset tool writes them: one keyed by the user text as a completions prompt
(``tokenizer.encode(text, add_special_tokens=True)``), one keyed by the conversation so far as
a chat prompt (``tokenizer.encode(tokenizer.render_chat(messages))``). A server finds these
rows only if it hashes a request's prompt ids computed the same way, with the same tokenizer.
This module writes new files only: it never changes an existing dataset in place.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from llmsim.datasets.download import ProgressCallback, ProgressOption, TerminalProgress
from llmsim.datasets.store import (
    DEFAULT_TABLE,
    DatasetError,
    create_table_sql,
    prompt_hash,
    quote_identifier,
)
from llmsim.engine.tokenizer import Tokenizer

_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}

Row = tuple[bytes, str, int]


@dataclass(frozen=True, slots=True)
class ConvertSummary:
    """What a conversion wrote."""

    rows: int
    skipped: int
    """Malformed items and turns left out (a malformed turn also ends its conversation)."""
    size_bytes: int


def convert(
    source: Path,
    output: Path,
    tokenizer: Tokenizer,
    table: str = DEFAULT_TABLE,
    progress: ProgressOption = None,
    overwrite: bool = False,
) -> ConvertSummary:
    """Write the dataset of the conversations in ``source`` to a new SQLite file ``output``.

    ``source`` is a JSON array or JSON Lines of items, each either ShareGPT-style
    (``{"conversations": [{"from": "human"|"gpt"|"system", "value": ...}]}``, also with
    ``user``/``assistant``) or OpenAI-style (``{"messages": [{"role", "content"}]}``).
    The file is built beside ``output`` and renamed into place once complete. Raises
    ``DatasetError`` when ``source`` cannot be read or ``output`` exists (unless
    ``overwrite``). ``progress`` is called with the conversations converted so far and their
    number; True reports to stderr (a bar on a terminal, one line otherwise); None or False
    (the default) report nothing.
    """
    source, output = Path(source), Path(output)
    if output.exists() and not overwrite:
        raise DatasetError(f"{output} already exists (pass overwrite to replace it)")
    items = _read_items(source)
    partial = output.with_name(f".{output.name}.{os.getpid()}.part")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot write dataset {output}: {exc}") from exc
    rows = skipped = 0
    try:
        db = sqlite3.connect(partial, isolation_level=None)
        try:
            # The file is renamed into place only when complete: no journal needed.
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute("BEGIN")
            db.execute(create_table_sql(table))
            insert = (
                f"INSERT INTO {quote_identifier(table)} (prompt_hash, gen_tokens, n_gen_tokens) "
                "VALUES (?, ?, ?)"
            )
            with _reporter(progress) as report:
                total = len(items)
                step = max(1, total // 1000)  # at most ~1000 reports, however many items
                if report is not None:
                    report(0, total)
                for done, item in enumerate(items, 1):
                    item_rows, item_skipped = rows_of_item(item, tokenizer)
                    db.executemany(insert, item_rows)
                    rows += len(item_rows)
                    skipped += item_skipped
                    if report is not None and (done % step == 0 or done == total):
                        report(done, total)
            db.execute(
                f"CREATE INDEX {quote_identifier(table + '_prompt_hash')} "
                f"ON {quote_identifier(table)} (prompt_hash)"
            )
            db.execute("COMMIT")
        finally:
            db.close()
        os.replace(partial, output)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, sqlite3.Error | OSError):
            raise DatasetError(f"cannot write dataset {output}: {exc}") from exc
        raise
    return ConvertSummary(rows=rows, skipped=skipped, size_bytes=output.stat().st_size)


def rows_of_item(item: Any, tokenizer: Tokenizer) -> tuple[list[Row], int]:
    """The dataset rows of one conversation item, and how many malformed parts were left out
    (1 for a malformed item)."""
    turns = _turns_of(item)
    if turns is None:
        return [], 1
    rows: list[Row] = []
    messages: list[dict[str, str]] = []
    skipped = 0
    index = 0
    while index < len(turns):
        turn = _message_of(turns[index])
        if turn is None:
            # Later turns would be recorded with the wrong conversation so far.
            skipped += 1
            break
        messages.append(turn)
        index += 1
        if turn["role"] != "user" or index >= len(turns):
            continue
        reply = _message_of(turns[index])
        if reply is None or reply["role"] != "assistant":
            continue
        ids = tokenizer.encode(reply["content"])
        gen_tokens = orjson.dumps({"Tokens": ids, "Strings": tokenizer.token_texts(ids)}).decode()
        # Keys as the endpoints encode prompts: completions with special tokens (as vLLM
        # encodes them), chat through the template without.
        keys = (
            tokenizer.encode(turn["content"], add_special_tokens=True),
            tokenizer.encode(tokenizer.render_chat(messages)),
        )
        for key in keys:
            rows.append((prompt_hash(key), gen_tokens, len(ids)))
        messages.append(reply)
        index += 1
    return rows, skipped


def _turns_of(item: Any) -> Sequence[Any] | None:
    """The list of turns of an item, or None when it has none."""
    if not isinstance(item, Mapping):
        return None
    turns = item.get("conversations")
    if turns is None:
        turns = item.get("messages")
    if not isinstance(turns, list) or not turns:
        return None
    return turns


def _message_of(turn: Any) -> dict[str, str] | None:
    """A turn as a chat message ``{"role", "content"}``, or None when it is malformed."""
    if not isinstance(turn, Mapping):
        return None
    if "from" in turn:
        role, text = turn.get("from"), turn.get("value")
    else:
        role, text = turn.get("role"), turn.get("content")
    role = _ROLES.get(role) if isinstance(role, str) else None
    if role is None or not isinstance(text, str) or not text:
        return None
    return {"role": role, "content": text}


def _read_items(source: Path) -> list[Any]:
    """The items of a JSON array file or of a JSON Lines file (a bad line is a bad item)."""
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise DatasetError(f"cannot read {source}: {exc}") from exc
    if data.lstrip()[:1] == b"[":
        try:
            items = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"{source} is not valid JSON: {exc}") from exc
        if not isinstance(items, list):
            raise DatasetError(f"{source}: expected a JSON array of conversations")
        return items
    with contextlib.suppress(orjson.JSONDecodeError):
        # One object, or JSON Lines with a single line.
        return [orjson.loads(data)]
    items = []
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            items.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            items.append(None)
    return items


@contextlib.contextmanager
def _reporter(progress: ProgressOption) -> Iterator[ProgressCallback | None]:
    """The callback a ``progress`` argument stands for (True: a ``TerminalProgress`` on stderr,
    closed on the way out)."""
    if progress is True:
        with TerminalProgress("converting", "conversations") as bar:
            yield bar
    elif progress is None or progress is False:
        yield None
    else:
        yield progress
