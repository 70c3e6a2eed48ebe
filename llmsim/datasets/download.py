"""Fetch a dataset file once: ``dataset-url`` is downloaded to ``dataset-path`` only when that
file is missing (DS-4).

The download goes to a temporary file beside the target and is renamed into place only when
complete, so an interrupted download never leaves a file that would be taken for the dataset.
This module must not touch an existing file, and fetches only http(s) URLs.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

from llmsim.datasets.store import DatasetError

_CHUNK = 1 << 20


def ensure_dataset(
    path: Path, url: str | None, progress: bool = True, timeout: float = 60.0
) -> Path:
    """``path`` when it exists; otherwise the file downloaded from ``url`` to ``path``.

    Raises ``DatasetError`` when there is neither a file nor a URL, or when the download fails
    (an answer other than 200, an empty or short body, a network error). ``timeout`` bounds
    each network wait in seconds; ``progress`` shows a progress bar on stderr.
    """
    path = Path(path)
    if path.exists():
        if not path.is_file():
            raise DatasetError(f"dataset path {path} is not a file")
        return path
    if not url:
        raise DatasetError(f"dataset file {path} does not exist and no dataset URL is set")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise DatasetError(f"dataset URL {url}: only http and https URLs are supported")
    # Named per process: ranks that start together download side by side, never into one file.
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        out_file = partial.open("xb")
    except OSError as exc:
        raise DatasetError(f"cannot save the dataset to {path}: {exc}") from exc
    try:
        with out_file as out:
            _download(url, out, progress, timeout)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise DatasetError(f"cannot save the dataset to {path}: {exc}") from exc
        raise
    return path


def _download(url: str, out: BinaryIO, progress: bool, timeout: float) -> None:
    """Write the body of ``url`` to the binary file ``out``."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    request = urllib.request.Request(url, headers={"User-Agent": "llmsim"})
    written = 0
    total: int | None = None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status != 200:
                raise DatasetError(
                    f"downloading dataset {url} failed: HTTP {response.status} {response.reason}"
                )
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = Progress(
                "downloading",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                disable=not progress,
            )
            with bar:
                task = bar.add_task("download", total=total)
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                    bar.update(task, advance=len(chunk))
    except urllib.error.HTTPError as exc:
        raise DatasetError(
            f"downloading dataset {url} failed: HTTP {exc.code} {exc.reason}"
        ) from exc
    except urllib.error.URLError as exc:
        raise DatasetError(f"downloading dataset {url} failed: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise DatasetError(f"downloading dataset {url} failed: {exc!r}") from exc
    if written == 0:
        raise DatasetError(f"downloading dataset {url} failed: HTTP 200 with an empty body")
    if total is not None and written != total:
        raise DatasetError(f"downloading dataset {url} failed: got {written} of {total} bytes")
