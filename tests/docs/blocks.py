"""The command blocks of the docs, as the doc-test and ``bench/doc_blocks.py`` both read them.

A command block is a fenced block of README.md or docs/*.md in one of ``COMMAND_LANGUAGES``; it
is keyed ``file#n``, n counting the file's command blocks from 1. Only the standard library
here: the bench script imports this module without pytest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
DOCS = [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
COMMAND_LANGUAGES = {"sh", "bash", "console", "shell", "python"}
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class DocBlock:
    key: str
    language: str
    text: str


def doc_blocks() -> Iterator[DocBlock]:
    """The command blocks of the docs, keyed ``file#n`` (n counts command blocks from 1)."""
    for path in DOCS:
        count = 0
        for match in BLOCK.finditer(path.read_text()):
            if match[1] in COMMAND_LANGUAGES:
                count += 1
                yield DocBlock(f"{path.relative_to(PROJECT_ROOT)}#{count}", match[1], match[2])
