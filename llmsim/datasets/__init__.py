"""Response datasets in upstream's SQLite format: reading answers, converting, downloading."""

from __future__ import annotations

from llmsim.datasets.convert import ConvertSummary, convert
from llmsim.datasets.download import ensure_dataset
from llmsim.datasets.store import (
    DatasetAnswer,
    DatasetEmpty,
    DatasetError,
    DatasetUnreadable,
    SqliteDataset,
    prompt_hash,
)

__all__ = [
    "ConvertSummary",
    "DatasetAnswer",
    "DatasetEmpty",
    "DatasetError",
    "DatasetUnreadable",
    "SqliteDataset",
    "convert",
    "ensure_dataset",
    "prompt_hash",
]
