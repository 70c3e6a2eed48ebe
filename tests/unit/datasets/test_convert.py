import hashlib
import json
import sqlite3
import struct
from pathlib import Path
from typing import Any

import pytest

from llmsim.datasets import ConvertSummary, DatasetError, convert
from llmsim.engine.tokenizer import SimulatedTokenizer
from tests.unit.datasets.support import PARIS, ROME


def sha256_of_ids(ids: list[int]) -> bytes:
    return hashlib.sha256(b"".join(struct.pack("<I", i) for i in ids)).digest()


def table_rows(path: Path, table: str = "llmd") -> list[tuple[int, bytes, str, int]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            f"SELECT id, prompt_hash, gen_tokens, n_gen_tokens FROM {table}"
        ).fetchall()


def expected_rows(tok: SimulatedTokenizer) -> list[tuple[bytes, dict[str, Any], int]]:
    """The rows the test corpus must give, computed independently of the converter."""

    def gen(text: str) -> dict[str, Any]:
        ids = tok.encode(text)
        return {"Tokens": ids, "Strings": tok.split(text)}

    def chat(*messages: tuple[str, str]) -> bytes:
        rendered = "".join(f"### {role}: {text}\n" for role, text in messages)
        return sha256_of_ids(tok.encode(rendered))

    def plain(text: str) -> bytes:
        return sha256_of_ids(tok.encode(text))

    q1, q2 = "What is the capital of France?", "And of Italy?"
    return [
        (plain(q1), gen(PARIS), len(tok.split(PARIS))),
        (chat(("user", q1)), gen(PARIS), len(tok.split(PARIS))),
        (plain(q2), gen(ROME), len(tok.split(ROME))),
        (chat(("user", q1), ("assistant", PARIS), ("user", q2)), gen(ROME), len(tok.split(ROME))),
        (plain("Hi"), gen("Hello!"), 2),
        (chat(("system", "Be brief."), ("user", "Hi")), gen("Hello!"), 2),
        (plain("Count to three."), gen("1, 2, 3."), 6),
        (chat(("user", "Count to three.")), gen("1, 2, 3."), 6),
    ]


def test_table_has_upstream_schema_and_a_prompt_hash_index_DS_1(
    tmp_path: Path, sharegpt_json: Path, tokenizer: SimulatedTokenizer
) -> None:
    out = tmp_path / "out.sqlite3"
    convert(sharegpt_json, out, tokenizer, progress=False)
    with sqlite3.connect(out) as db:
        columns = [(row[1], row[2]) for row in db.execute("PRAGMA table_info(llmd)")]
        indexes = [row[1] for row in db.execute("PRAGMA index_list(llmd)")]
        indexed = [db.execute(f"PRAGMA index_info({name})").fetchall()[0][2] for name in indexes]
    assert columns == [
        ("id", "INTEGER"),
        ("prompt_hash", "BLOB"),
        ("gen_tokens", "JSON"),
        ("n_gen_tokens", "INTEGER"),
    ]
    assert "prompt_hash" in indexed


def test_each_answered_user_turn_gives_a_completions_row_and_a_chat_row_DS_4(
    tmp_path: Path, sharegpt_json: Path, tokenizer: SimulatedTokenizer
) -> None:
    out = tmp_path / "out.sqlite3"
    summary = convert(sharegpt_json, out, tokenizer, progress=False)
    rows = table_rows(out)
    got = [(key, json.loads(gen), n) for _, key, gen, n in rows]
    assert got == expected_rows(SimulatedTokenizer())
    assert [row[0] for row in rows] == list(range(1, 9))
    assert summary == ConvertSummary(rows=8, skipped=2, size_bytes=out.stat().st_size)


def test_gen_tokens_is_json_text_with_tokens_and_strings_DS_1(
    tmp_path: Path, sharegpt_json: Path, tokenizer: SimulatedTokenizer
) -> None:
    out = tmp_path / "out.sqlite3"
    convert(sharegpt_json, out, tokenizer, progress=False)
    with sqlite3.connect(out) as db:
        kind, value = db.execute("SELECT typeof(gen_tokens), gen_tokens FROM llmd").fetchone()
        strings = db.execute("SELECT json_extract(gen_tokens, '$.Strings') FROM llmd").fetchone()
    assert kind == "text"
    gen = json.loads(value)
    assert set(gen) == {"Tokens", "Strings"}
    assert "".join(gen["Strings"]) == PARIS
    assert json.loads(strings[0]) == gen["Strings"]


def test_json_lines_give_the_same_rows_and_count_a_bad_line(
    tmp_path: Path, sharegpt_json: Path, sharegpt_jsonl: Path, tokenizer: SimulatedTokenizer
) -> None:
    from_json = convert(sharegpt_json, tmp_path / "a.sqlite3", tokenizer, progress=False)
    from_lines = convert(sharegpt_jsonl, tmp_path / "b.sqlite3", tokenizer, progress=False)
    assert table_rows(tmp_path / "a.sqlite3") == table_rows(tmp_path / "b.sqlite3")
    assert (from_json.rows, from_json.skipped) == (8, 2)
    assert (from_lines.rows, from_lines.skipped) == (8, 3)


def test_single_object_file_is_one_item(tmp_path: Path, tokenizer: SimulatedTokenizer) -> None:
    source = tmp_path / "one.json"
    item = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}
    source.write_text(json.dumps(item, indent=2))
    summary = convert(source, tmp_path / "out.sqlite3", tokenizer, progress=False)
    assert (summary.rows, summary.skipped) == (2, 0)


def test_unanswered_and_repeated_turns_are_kept_in_the_chat_so_far(
    tmp_path: Path, tokenizer: SimulatedTokenizer
) -> None:
    source = tmp_path / "odd.json"
    turns = [
        {"from": "gpt", "value": "Welcome."},
        {"from": "human", "value": "One"},
        {"from": "human", "value": "Two"},
        {"from": "gpt", "value": "Both."},
        {"from": "human", "value": "Bye"},
    ]
    source.write_text(json.dumps([{"conversations": turns}]))
    out = tmp_path / "out.sqlite3"
    summary = convert(source, out, tokenizer, progress=False)
    rendered = "### assistant: Welcome.\n### user: One\n### user: Two\n"
    keys = [row[1] for row in table_rows(out)]
    assert keys == [
        sha256_of_ids(tokenizer.encode("Two")),
        sha256_of_ids(tokenizer.encode(rendered)),
    ]
    assert (summary.rows, summary.skipped) == (2, 0)


def test_missing_output_folders_are_created(
    tmp_path: Path, sharegpt_json: Path, tokenizer: SimulatedTokenizer
) -> None:
    out = tmp_path / "new" / "dir" / "out.sqlite3"
    assert convert(sharegpt_json, out, tokenizer, progress=False).rows == 8


def test_custom_table_name(
    tmp_path: Path, sharegpt_json: Path, tokenizer: SimulatedTokenizer
) -> None:
    out = tmp_path / "out.sqlite3"
    convert(sharegpt_json, out, tokenizer, table="replies", progress=False)
    assert len(table_rows(out, "replies")) == 8


def test_refuses_to_overwrite_unless_asked(
    tmp_path: Path, sharegpt_json: Path, tokenizer: SimulatedTokenizer
) -> None:
    out = tmp_path / "out.sqlite3"
    out.write_bytes(b"precious")
    with pytest.raises(DatasetError, match="already exists"):
        convert(sharegpt_json, out, tokenizer, progress=False)
    assert out.read_bytes() == b"precious"
    convert(sharegpt_json, out, tokenizer, progress=False, overwrite=True)
    assert len(table_rows(out)) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.sqlite3", "sharegpt.json"]


def test_invalid_json_array_is_an_error_and_leaves_no_file(
    tmp_path: Path, tokenizer: SimulatedTokenizer
) -> None:
    source = tmp_path / "broken.json"
    source.write_text('[{"conversations": [}')
    with pytest.raises(DatasetError, match=r"broken\.json"):
        convert(source, tmp_path / "out.sqlite3", tokenizer, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.json"]


def test_progress_bar_goes_to_stderr(
    tmp_path: Path,
    sharegpt_json: Path,
    tokenizer: SimulatedTokenizer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    convert(sharegpt_json, tmp_path / "out.sqlite3", tokenizer, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "converting" in captured.err
