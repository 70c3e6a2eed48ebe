"""Upstream's SQLite response datasets: the file format, and answers read from it (DS-1 to DS-3).

A dataset is a table (default ``llmd``) of recorded replies keyed by the SHA-256 of the prompt's
token ids. This module opens such a file read-only (or copies it into memory), checks its
schema, and picks a reply for a prompt by upstream's rules. It must not write to the file, and
it must not choose anything at random except through the ``random.Random`` it is given, so a
seeded request gets the same answer every time.
"""

from __future__ import annotations

import hashlib
import logging
import random
import sqlite3
import struct
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from llmsim.engine.text import TextSource
from llmsim.engine.tokenizer import Tokenizer
from llmsim.errors import LlmsimError, StartupError

log = logging.getLogger(__name__)

DEFAULT_TABLE = "llmd"
COLUMNS = {"id": "INTEGER", "prompt_hash": "BLOB", "gen_tokens": "JSON", "n_gen_tokens": "INTEGER"}
"""The columns a dataset table must have, with their exact declared types (DS-1)."""

# The engine's finish reasons, not imported: the engine may import this module.
FINISH_STOP = "stop"
FINISH_LENGTH = "length"


class DatasetError(StartupError):
    """A dataset file is missing, unreadable or not in upstream's format."""


class DatasetEmpty(LlmsimError):
    """The dataset has no rows to answer from (500, as upstream answers)."""

    status = 500

    def __init__(self) -> None:
        super().__init__("Dataset is empty")


class DatasetUnreadable(Exception):
    """The dataset could not be read while serving (its file damaged or changed under the
    server, or a row that does not decode): the caller answers without it."""


@dataclass(frozen=True, slots=True)
class DatasetAnswer:
    """A reply taken from a dataset: its token texts and why it stopped."""

    tokens: list[str]
    finish_reason: str


def prompt_hash(token_ids: Sequence[int]) -> bytes:
    """The dataset key of a prompt: SHA-256 over its ids, each as 4-byte little-endian (DS-2)."""
    return hashlib.sha256(struct.pack(f"<{len(token_ids)}I", *token_ids)).digest()


def quote_identifier(name: str) -> str:
    """``name`` quoted as an SQLite identifier (table names come from the user)."""
    return '"' + name.replace('"', '""') + '"'


def create_table_sql(table: str) -> str:
    """The statement that creates an empty dataset table named ``table``."""
    return (
        f"CREATE TABLE {quote_identifier(table)} (id INTEGER PRIMARY KEY, prompt_hash BLOB NOT "
        "NULL, gen_tokens JSON NOT NULL, n_gen_tokens INTEGER NOT NULL)"
    )


def check_schema(connection: sqlite3.Connection, table: str, where: str) -> None:
    """Raise ``DatasetError`` unless ``table`` exists with upstream's columns and types.

    Extra columns are allowed, as upstream allows them; type names compare without case.
    """
    rows = connection.execute(f"PRAGMA table_info({quote_identifier(table)})").fetchall()
    if not rows:
        tables = [
            name
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        found = ", ".join(tables) if tables else "none"
        raise DatasetError(f"dataset {where}: no table {table!r} (tables found: {found})")
    declared = {str(row[1]): str(row[2]) for row in rows}
    problems = []
    for column, wanted in COLUMNS.items():
        got = declared.get(column)
        if got is None:
            problems.append(f"column {column!r} is missing")
        elif got.upper() != wanted:
            problems.append(f"column {column!r} has type {got or 'none'!r}, expected {wanted!r}")
    if problems:
        expected = ", ".join(f"{c} {t}" for c, t in COLUMNS.items())
        raise DatasetError(
            f"dataset {where}: table {table!r} is not a dataset table ({'; '.join(problems)}); "
            f"expected columns {expected}"
        )


class SqliteDataset:
    """Recorded replies in an upstream dataset table, chosen per prompt by upstream's rules.

    Each answer costs two indexed lookups: the rows of the prompt's hash, then the chosen
    row's tokens. Random rows are drawn from an in-memory list of (length, rowid) pairs read
    once at opening, so no answer scans the table. Without an index on ``prompt_hash`` in the
    file, the first lookup scans; ``in_memory`` adds that index to the copy.
    """

    def __init__(
        self, connection: sqlite3.Connection, table: str, tokenizer: Tokenizer, where: str
    ):
        self._db = connection
        self._table = quote_identifier(table)
        self._where = where
        self._filler = TextSource(tokenizer)
        self._tokenizer = tokenizer
        lengths: array[int] = array("q")
        rowids: array[int] = array("q")
        for rowid, length in connection.execute(
            f"SELECT rowid, n_gen_tokens FROM {self._table} ORDER BY n_gen_tokens, rowid"
        ):
            if not isinstance(length, int) or length < 0:
                raise DatasetError(f"dataset {where}: row {rowid} has n_gen_tokens {length!r}")
            lengths.append(length)
            rowids.append(rowid)
        self._lengths = lengths
        self._rowids = rowids

    @classmethod
    def open(
        cls,
        path: Path | str,
        tokenizer: Tokenizer,
        table: str = DEFAULT_TABLE,
        in_memory: bool = False,
    ) -> SqliteDataset:
        """Open the dataset at ``path`` read-only, or copy it into memory (``in_memory``).

        Raises ``DatasetError`` when the file is missing, is not SQLite, or has no dataset
        table named ``table``. A file connection holds a read transaction for its lifetime,
        so the rows cannot change under it.
        """
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise DatasetError(f"dataset {where}: no such file")
        uri = path.resolve().as_uri() + "?mode=ro"
        source: sqlite3.Connection | None = None
        try:
            source = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            check_schema(source, table, where)
            if in_memory:
                memory = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                source.backup(memory)
                source.close()
                source = memory
                if not _has_index_on(memory, table, "prompt_hash"):
                    memory.execute(
                        f"CREATE INDEX {quote_identifier(table + '_prompt_hash')} "
                        f"ON {quote_identifier(table)} (prompt_hash)"
                    )
            else:
                source.execute("BEGIN")
                if not _has_index_on(source, table, "prompt_hash"):
                    log.warning(
                        "dataset %s has no index on prompt_hash: every lookup scans the table "
                        "(convert it again, or load it in memory)",
                        where,
                    )
            dataset = cls(source, table, tokenizer, where)
        except BaseException as exc:
            if source is not None:
                source.close()
            if isinstance(exc, sqlite3.Error):
                raise DatasetError(f"dataset {where}: cannot read it as SQLite: {exc}") from exc
            raise
        log.info("dataset %s: %d rows%s", where, len(dataset), " (in memory)" if in_memory else "")
        return dataset

    def __len__(self) -> int:
        """The number of rows."""
        return len(self._rowids)

    def close(self) -> None:
        """Release the file (or the memory copy)."""
        self._db.close()

    def __enter__(self) -> SqliteDataset:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def answer(
        self, prompt_ids: Sequence[int], max_tokens: int, ignore_eos: bool, rng: random.Random
    ) -> DatasetAnswer:
        """The reply to the prompt with token ids ``prompt_ids`` under the limit ``max_tokens``
        (the request's, or what the context window leaves; GEN-2), by DS-3.

        A recorded reply for this prompt is preferred; otherwise a random row of the dataset
        is used. Replies are cut to ``max_tokens``, and with ``ignore_eos`` padded with
        built-in text up to exactly ``max_tokens``. Raises ``DatasetEmpty`` when there are
        no rows, ``DatasetUnreadable`` when the file or the row cannot be read.
        """
        if max_tokens < 0:
            raise ValueError(f"max_tokens must not be negative, got {max_tokens}")
        if not self._rowids:
            raise DatasetEmpty()
        try:
            rowid = self._pick_match(prompt_hash(prompt_ids), max_tokens, ignore_eos, rng)
            if rowid is None:
                rowid = self._pick_any(max_tokens, ignore_eos, rng)
            tokens = self._tokens_of(rowid)
        except sqlite3.Error as exc:
            raise DatasetUnreadable(f"dataset {self._where}: {exc}") from exc
        if len(tokens) > max_tokens:
            del tokens[max_tokens:]
        elif ignore_eos and len(tokens) < max_tokens:
            tokens.extend(self._filler.tokens(rng, max_tokens - len(tokens)))
        finish = FINISH_LENGTH if len(tokens) == max_tokens else FINISH_STOP
        return DatasetAnswer(tokens, finish)

    def _pick_match(
        self, key: bytes, max_tokens: int, ignore_eos: bool, rng: random.Random
    ) -> int | None:
        """A random row recorded for this prompt, by DS-3's order of preference, or None."""
        matches = self._db.execute(
            f"SELECT rowid, n_gen_tokens FROM {self._table} WHERE prompt_hash = ? ORDER BY rowid",
            (key,),
        ).fetchall()
        if not matches:
            return None
        preferences: tuple[list[int], ...]
        if ignore_eos:
            preferences = (
                [r for r, n in matches if n == max_tokens],
                [r for r, n in matches if n > max_tokens],
                [r for r, n in matches if n < max_tokens],
            )
        else:
            preferences = (
                [r for r, n in matches if n <= max_tokens],
                [r for r, n in matches if n > max_tokens],
            )
        candidates = next(rows for rows in preferences if rows)
        return int(candidates[rng.randrange(len(candidates))])

    def _pick_any(self, max_tokens: int, ignore_eos: bool, rng: random.Random) -> int:
        """A random row of length ``max_tokens`` (``ignore_eos``) or at most that, else any."""
        lengths = self._lengths
        low = bisect_left(lengths, max_tokens) if ignore_eos else 0
        high = bisect_right(lengths, max_tokens)
        if high == low:
            low, high = 0, len(lengths)
        return self._rowids[low + rng.randrange(high - low)]

    def _tokens_of(self, rowid: int) -> list[str]:
        """The token texts recorded in row ``rowid``."""
        found = self._db.execute(
            f"SELECT gen_tokens FROM {self._table} WHERE rowid = ?", (rowid,)
        ).fetchone()
        try:
            if found is None:
                raise ValueError("the row is gone")
            return self._texts_of(orjson.loads(found[0]))
        except (TypeError, ValueError) as exc:
            raise DatasetUnreadable(
                f"dataset {self._where}: cannot read gen_tokens of row {rowid} ({exc})"
            ) from exc

    def _texts_of(self, value: Any) -> list[str]:
        """The token texts of a ``gen_tokens`` value: ``{"Tokens", "Strings"}`` (key case
        ignored, as Go's decoder does), the texts taken from the ids when only those are
        there, or a bare list of texts (older upstream files)."""
        if isinstance(value, dict):
            keys = {str(k).lower(): v for k, v in value.items()}
            strings = keys.get("strings")
            if strings is None and isinstance(keys.get("tokens"), list):
                return self._tokenizer.token_texts([int(i) for i in keys["tokens"]])
            value = strings
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise ValueError('expected {"Tokens": [...], "Strings": [...]}')
        return list(value)


def _has_index_on(connection: sqlite3.Connection, table: str, column: str) -> bool:
    """Whether some index of ``table`` starts with ``column``."""
    for index in connection.execute(f"PRAGMA index_list({quote_identifier(table)})").fetchall():
        columns = connection.execute(f"PRAGMA index_info({quote_identifier(index[1])})").fetchall()
        if columns and columns[0][2] == column:
            return True
    return False
