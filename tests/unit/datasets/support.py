"""Helpers of the dataset tests: a small ShareGPT corpus and hand-made dataset files."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmsim.datasets.store import create_table_sql, prompt_hash

PARIS = "The capital of France is Paris."
ROME = "Rome is the capital of Italy, and it is a lovely city."

ITEMS: list[Any] = [
    {
        "id": "two-pairs",
        "conversations": [
            {"from": "human", "value": "What is the capital of France?"},
            {"from": "gpt", "value": PARIS},
            {"from": "human", "value": "And of Italy?"},
            {"from": "gpt", "value": ROME},
        ],
    },
    {
        "id": "system-and-user-roles",
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "user", "value": "Hi"},
            {"from": "assistant", "value": "Hello!"},
        ],
    },
    {
        "id": "openai-style",
        "messages": [
            {"role": "user", "content": "Count to three."},
            {"role": "assistant", "content": "1, 2, 3."},
        ],
    },
    "not a conversation",
    {
        "id": "bad-turn",
        "conversations": [
            {"from": "human", "value": "Who are you?"},
            {"from": "robot", "value": "beep"},
            {"from": "gpt", "value": "too late"},
        ],
    },
]
"""Four answered user turns (8 rows); one malformed item and one malformed turn (skipped 2)."""


def make_dataset(
    path: Path,
    rows: Sequence[tuple[Sequence[int], list[str]]],
    table: str = "llmd",
    index: bool = False,
) -> Path:
    """A dataset file with one row per (prompt ids, reply token texts); token ids are made up."""
    db = sqlite3.connect(path)
    with db:
        db.execute(create_table_sql(table))
        for prompt, texts in rows:
            gen = {"Tokens": list(range(len(texts))), "Strings": texts}
            db.execute(
                f"INSERT INTO {table} (prompt_hash, gen_tokens, n_gen_tokens) VALUES (?, ?, ?)",
                (prompt_hash(prompt), json.dumps(gen), len(texts)),
            )
        if index:
            db.execute(f"CREATE INDEX {table}_hash ON {table} (prompt_hash)")
    db.close()
    return path


def reply(tag: str, n: int) -> list[str]:
    """``n`` distinct token texts marked with ``tag``."""
    return [f"{tag}{i} " for i in range(n)]
