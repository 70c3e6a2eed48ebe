import hashlib
import json
import random
import sqlite3
import struct
from pathlib import Path

import pytest

from llmsim.datasets import (
    DatasetAnswer,
    DatasetEmpty,
    DatasetError,
    DatasetUnreadable,
    SqliteDataset,
    convert,
    prompt_hash,
)
from llmsim.engine.text import SENTENCES
from llmsim.engine.tokenizer import SimulatedTokenizer
from llmsim.errors import LlmsimError, StartupError
from tests.unit.datasets.support import PARIS, ROME, make_dataset, reply

SHARED = [7, 8, 9]
"""The prompt of the hand-made dataset's rows of 3, 5 and 8 tokens."""
UNKNOWN = [424242]
FILLER = set(SimulatedTokenizer().split("".join(SENTENCES)))
"""Every token the built-in text pads with."""


@pytest.fixture
def lengths_dataset(tmp_path: Path) -> Path:
    """Rows for SHARED of 3, 5 and 8 tokens, and rows for other prompts of 2, 4, 4 and 6."""
    rows = [
        (SHARED, reply("a", 3)),
        (SHARED, reply("b", 5)),
        (SHARED, reply("c", 8)),
        ([1], reply("p", 2)),
        ([2], reply("q", 4)),
        ([3], reply("r", 4)),
        ([4], reply("s", 6)),
    ]
    return make_dataset(tmp_path / "lengths.sqlite3", rows)


@pytest.fixture
def converted(tmp_path: Path, sharegpt_json: Path, tokenizer: SimulatedTokenizer) -> Path:
    out = tmp_path / "converted.sqlite3"
    convert(sharegpt_json, out, tokenizer, progress=False)
    return out


def answers(
    dataset: SqliteDataset, prompt: list[int], max_tokens: int, ignore_eos: bool, n: int = 200
) -> list[DatasetAnswer]:
    return [dataset.answer(prompt, max_tokens, ignore_eos, random.Random(s)) for s in range(n)]


def test_prompt_hash_is_sha256_of_little_endian_uint32_ids_DS_2() -> None:
    ids = [0, 1, 255, 256, 65536, 2**32 - 1]
    expected = hashlib.sha256(b"".join(struct.pack("<I", i) for i in ids)).digest()
    assert prompt_hash(ids) == expected
    assert prompt_hash([]) == hashlib.sha256(b"").digest()


def test_known_completions_prompt_returns_its_recorded_reply_DS_3(
    converted: Path, tokenizer: SimulatedTokenizer
) -> None:
    with SqliteDataset.open(converted, tokenizer) as dataset:
        ids = tokenizer.encode("What is the capital of France?")
        got = dataset.answer(ids, 100, False, random.Random(1))
    assert got == DatasetAnswer(tokenizer.split(PARIS), "stop")


def test_known_chat_prompt_returns_its_recorded_reply_DS_3(
    converted: Path, tokenizer: SimulatedTokenizer
) -> None:
    messages = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": PARIS},
        {"role": "user", "content": "And of Italy?"},
    ]
    ids = tokenizer.encode(tokenizer.render_chat(messages))
    with SqliteDataset.open(converted, tokenizer) as dataset:
        got = dataset.answer(ids, 100, False, random.Random(1))
    assert got == DatasetAnswer(tokenizer.split(ROME), "stop")


def test_recorded_reply_is_cut_at_max_tokens_with_finish_length_DS_3(
    converted: Path, tokenizer: SimulatedTokenizer
) -> None:
    with SqliteDataset.open(converted, tokenizer) as dataset:
        got = dataset.answer(
            tokenizer.encode("What is the capital of France?"), 3, False, random.Random(1)
        )
    assert got == DatasetAnswer(["The ", "capital ", "of "], "length")


def test_reply_of_exactly_max_tokens_finishes_with_length(
    converted: Path, tokenizer: SimulatedTokenizer
) -> None:
    with SqliteDataset.open(converted, tokenizer) as dataset:
        got = dataset.answer(tokenizer.encode("Hi"), 2, False, random.Random(1))
    assert got == DatasetAnswer(["Hello", "!"], "length")


def test_ignore_eos_pads_a_short_reply_to_exactly_max_tokens_DS_3(
    converted: Path, tokenizer: SimulatedTokenizer
) -> None:
    with SqliteDataset.open(converted, tokenizer) as dataset:
        got = dataset.answer(tokenizer.encode("Hi"), 25, True, random.Random(1))
    assert len(got.tokens) == 25
    assert got.tokens[:2] == ["Hello", "!"]
    assert set(got.tokens[2:]) <= FILLER
    assert got.finish_reason == "length"


def test_matches_without_ignore_eos_prefer_replies_that_fit_DS_3(lengths_dataset: Path) -> None:
    with SqliteDataset.open(lengths_dataset, SimulatedTokenizer()) as dataset:
        fitting = answers(dataset, SHARED, 5, False)
        cut = answers(dataset, SHARED, 2, False)
    assert {tuple(a.tokens) for a in fitting} == {tuple(reply("a", 3)), tuple(reply("b", 5))}
    assert {a.finish_reason for a in fitting if len(a.tokens) == 3} == {"stop"}
    assert {a.finish_reason for a in fitting if len(a.tokens) == 5} == {"length"}
    assert {tuple(a.tokens) for a in cut} == {tuple(reply(t, 2)) for t in "abc"}
    assert {a.finish_reason for a in cut} == {"length"}


def test_matches_with_ignore_eos_prefer_exact_then_longer_then_padded_DS_3(
    lengths_dataset: Path,
) -> None:
    with SqliteDataset.open(lengths_dataset, SimulatedTokenizer()) as dataset:
        exact = answers(dataset, SHARED, 5, True)
        longer = answers(dataset, SHARED, 4, True)
        padded = answers(dataset, SHARED, 12, True)
    assert {tuple(a.tokens) for a in exact} == {tuple(reply("b", 5))}
    assert {tuple(a.tokens) for a in longer} == {tuple(reply("b", 4)), tuple(reply("c", 4))}
    starts = {a.tokens[0] for a in padded}
    assert starts == {"a0 ", "b0 ", "c0 "}
    for a in padded:
        recorded = {"a0 ": reply("a", 3), "b0 ": reply("b", 5), "c0 ": reply("c", 8)}[a.tokens[0]]
        assert a.tokens[: len(recorded)] == recorded
        assert set(a.tokens[len(recorded) :]) <= FILLER
    assert {len(a.tokens) for a in exact + longer + padded} == {5, 4, 12}
    assert {a.finish_reason for a in exact + longer + padded} == {"length"}


def test_unknown_prompt_gets_a_random_row_within_the_limit_DS_3(lengths_dataset: Path) -> None:
    with SqliteDataset.open(lengths_dataset, SimulatedTokenizer()) as dataset:
        got = answers(dataset, UNKNOWN, 4, False, n=400)
    picked = {tuple(a.tokens) for a in got}
    assert picked == {
        tuple(reply("a", 3)),
        tuple(reply("p", 2)),
        tuple(reply("q", 4)),
        tuple(reply("r", 4)),
    }
    assert all(a.finish_reason == ("length" if len(a.tokens) == 4 else "stop") for a in got)


def test_unknown_prompt_with_ignore_eos_gets_a_row_of_exactly_max_tokens_DS_3(
    lengths_dataset: Path,
) -> None:
    with SqliteDataset.open(lengths_dataset, SimulatedTokenizer()) as dataset:
        got = answers(dataset, UNKNOWN, 4, True)
    assert {tuple(a.tokens) for a in got} == {tuple(reply("q", 4)), tuple(reply("r", 4))}


def test_unknown_prompt_falls_back_to_any_row_cut_or_padded_DS_3(lengths_dataset: Path) -> None:
    with SqliteDataset.open(lengths_dataset, SimulatedTokenizer()) as dataset:
        cut = answers(dataset, UNKNOWN, 1, False, n=400)
        padded = answers(dataset, UNKNOWN, 7, True, n=400)
    assert {a.tokens[0][0] for a in cut} == set("abcpqrs")
    assert {len(a.tokens) for a in cut} == {1}
    assert {a.finish_reason for a in cut} == {"length"}
    assert {len(a.tokens) for a in padded} == {7}
    assert {a.tokens[0][0] for a in padded} == set("abcpqrs")


def test_same_seed_gives_the_same_answer(lengths_dataset: Path) -> None:
    with SqliteDataset.open(lengths_dataset, SimulatedTokenizer()) as dataset:
        for seed in range(20):
            first = dataset.answer(UNKNOWN, 30, True, random.Random(seed))
            again = dataset.answer(UNKNOWN, 30, True, random.Random(seed))
            assert first == again
        distinct = {tuple(a.tokens) for a in answers(dataset, UNKNOWN, 30, True, n=20)}
    assert len(distinct) > 1


def test_empty_table_answers_dataset_is_empty_with_500(tmp_path: Path) -> None:
    path = make_dataset(tmp_path / "empty.sqlite3", [])
    with SqliteDataset.open(path, SimulatedTokenizer()) as dataset:
        assert len(dataset) == 0
        with pytest.raises(DatasetEmpty) as caught:
            dataset.answer([1, 2], 10, False, random.Random(0))
    assert isinstance(caught.value, LlmsimError)
    assert caught.value.status == 500
    assert caught.value.message == "Dataset is empty"


def test_wrong_column_type_is_a_startup_error_naming_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "wrong.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE llmd "
            "(id INTEGER, prompt_hash BLOB, gen_tokens TEXT, n_gen_tokens INTEGER)"
        )
    with pytest.raises(DatasetError) as caught:
        SqliteDataset.open(path, SimulatedTokenizer())
    assert isinstance(caught.value, StartupError)
    message = str(caught.value)
    assert str(path) in message
    assert "gen_tokens" in message and "'TEXT'" in message and "'JSON'" in message


def test_missing_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE llmd (id INTEGER, prompt_hash BLOB, gen_tokens JSON)")
    with pytest.raises(DatasetError, match="'n_gen_tokens' is missing"):
        SqliteDataset.open(path, SimulatedTokenizer())


def test_missing_table_is_an_error_listing_the_tables(lengths_dataset: Path) -> None:
    with pytest.raises(DatasetError, match=r"no table 'other' \(tables found: llmd\)"):
        SqliteDataset.open(lengths_dataset, SimulatedTokenizer(), table="other")


def test_missing_or_non_sqlite_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        SqliteDataset.open(tmp_path / "absent.sqlite3", SimulatedTokenizer())
    junk = tmp_path / "junk.sqlite3"
    junk.write_text("<html>not found</html>" * 100)
    with pytest.raises(DatasetError, match=r"junk\.sqlite3: cannot read it as SQLite"):
        SqliteDataset.open(junk, SimulatedTokenizer())


def test_file_is_opened_read_only(lengths_dataset: Path) -> None:
    before = lengths_dataset.read_bytes()
    with SqliteDataset.open(lengths_dataset, SimulatedTokenizer()) as dataset:
        dataset.answer(UNKNOWN, 10, True, random.Random(0))
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            dataset._db.execute("DELETE FROM llmd")
    assert lengths_dataset.read_bytes() == before


def test_in_memory_copy_answers_like_the_file_and_outlives_it(
    converted: Path, tokenizer: SimulatedTokenizer
) -> None:
    ids = tokenizer.encode("What is the capital of France?")
    with SqliteDataset.open(converted, tokenizer) as on_disk:
        expected = [on_disk.answer(p, 9, True, random.Random(5)) for p in (ids, UNKNOWN)]
    with SqliteDataset.open(converted, tokenizer, in_memory=True) as in_memory:
        converted.unlink()
        got = [in_memory.answer(p, 9, True, random.Random(5)) for p in (ids, UNKNOWN)]
        assert len(in_memory) == 8
    assert got == expected


def test_in_memory_copy_gets_a_prompt_hash_index(lengths_dataset: Path) -> None:
    with SqliteDataset.open(lengths_dataset, SimulatedTokenizer(), in_memory=True) as dataset:
        plan = dataset._db.execute(
            "EXPLAIN QUERY PLAN SELECT rowid FROM llmd WHERE prompt_hash = ?", (b"x",)
        ).fetchall()
    assert "USING" in str(plan) and "INDEX" in str(plan)


def test_custom_table_name(tmp_path: Path) -> None:
    path = make_dataset(tmp_path / "t.sqlite3", [([5], reply("z", 2))], table="mine")
    with SqliteDataset.open(path, SimulatedTokenizer(), table="mine") as dataset:
        assert dataset.answer([5], 10, False, random.Random(0)).tokens == reply("z", 2)


def test_older_rows_of_bare_strings_and_any_key_case_are_read(tmp_path: Path) -> None:
    path = make_dataset(tmp_path / "old.sqlite3", [([1], ["x"]), ([2], ["y"])])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE llmd SET gen_tokens = ? WHERE id = 1", (json.dumps(["old ", "row"]),))
        db.execute(
            "UPDATE llmd SET gen_tokens = ? WHERE id = 2", ('{"tokens":[1],"strings":["lc"]}',)
        )
    with SqliteDataset.open(path, SimulatedTokenizer()) as dataset:
        assert dataset.answer([1], 10, False, random.Random(0)).tokens == ["old ", "row"]
        assert dataset.answer([2], 10, False, random.Random(0)).tokens == ["lc"]


def test_malformed_row_is_unreadable_for_the_caller_to_answer_without_it(tmp_path: Path) -> None:
    path = make_dataset(tmp_path / "bad.sqlite3", [([1], ["x"])])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE llmd SET gen_tokens = '{\"Strings\": 3}'")
    with (
        SqliteDataset.open(path, SimulatedTokenizer()) as dataset,
        pytest.raises(DatasetUnreadable, match="gen_tokens of row 1"),
    ):
        dataset.answer([1], 10, False, random.Random(0))
