import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmsim.datasets.cli import app, human_size, make_app
from llmsim.engine.tokenizer import SimulatedTokenizer, Tokenizer

runner = CliRunner()


def test_convert_prints_a_summary_and_exits_0(tmp_path: Path, sharegpt_json: Path) -> None:
    out = tmp_path / "out.sqlite3"
    result = runner.invoke(app, ["convert", str(sharegpt_json), str(out)])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        rf"wrote 8 rows to {re.escape(str(out))} \(skipped 2, \d+(\.\d)? kB\)\n", result.stdout
    )
    with sqlite3.connect(out) as db:
        assert db.execute("SELECT COUNT(*) FROM llmd").fetchone() == (8,)


def test_convert_refuses_to_overwrite_without_the_flag(tmp_path: Path, sharegpt_json: Path) -> None:
    out = tmp_path / "out.sqlite3"
    out.write_bytes(b"keep me")
    refused = runner.invoke(app, ["convert", str(sharegpt_json), str(out)])
    assert refused.exit_code == 1
    assert "already exists" in refused.stderr
    assert out.read_bytes() == b"keep me"
    replaced = runner.invoke(app, ["convert", str(sharegpt_json), str(out), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert replaced.stdout.startswith("wrote 8 rows")


def test_convert_into_a_named_table(tmp_path: Path, sharegpt_json: Path) -> None:
    out = tmp_path / "out.sqlite3"
    result = runner.invoke(app, ["convert", str(sharegpt_json), str(out), "--table", "chats"])
    assert result.exit_code == 0, result.output
    with sqlite3.connect(out) as db:
        assert db.execute("SELECT COUNT(*) FROM chats").fetchone() == (8,)


def test_unknown_tokenizer_or_missing_source_exits_1(tmp_path: Path, sharegpt_json: Path) -> None:
    out = tmp_path / "out.sqlite3"
    unknown = runner.invoke(app, ["convert", str(sharegpt_json), str(out), "--tokenizer", "gpt9"])
    assert unknown.exit_code == 1
    assert "tokenizer for 'gpt9': not in the local HuggingFace cache" in unknown.stderr
    missing = runner.invoke(app, ["convert", str(tmp_path / "nope.json"), str(out)])
    assert missing.exit_code == 1
    assert "nope.json" in missing.stderr
    assert not out.exists()


def test_a_given_loader_resolves_the_tokenizer_spec(tmp_path: Path, sharegpt_json: Path) -> None:
    asked: list[str] = []

    def loader(spec: str) -> Tokenizer:
        asked.append(spec)
        return SimulatedTokenizer()

    custom = make_app(loader)
    out = tmp_path / "out.sqlite3"
    result = runner.invoke(custom, ["convert", str(sharegpt_json), str(out), "--tokenizer", "qwen"])
    assert result.exit_code == 0, result.output
    assert asked == ["qwen"]


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1_234_567, "1.2 MB"), (5 * 10**12, "5.0 TB")],
)
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text
