"""Fixtures of the dataset tests: a tokenizer and the ShareGPT corpus as JSON and JSON Lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmsim.engine.tokenizer import SimulatedTokenizer
from tests.unit.datasets.support import ITEMS


@pytest.fixture
def tokenizer() -> SimulatedTokenizer:
    return SimulatedTokenizer()


@pytest.fixture
def sharegpt_json(tmp_path: Path) -> Path:
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(ITEMS, indent=2))
    return path


@pytest.fixture
def sharegpt_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "sharegpt.jsonl"
    lines = [json.dumps(item) for item in ITEMS]
    lines.insert(2, "{not json")
    lines.insert(3, "")
    path.write_text("\n".join(lines) + "\n")
    return path
