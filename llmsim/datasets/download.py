"""Fetch a dataset file once: ``dataset-url`` is downloaded to ``dataset-path`` only when that
file is missing (DS-4).

The download goes to a temporary file beside the target and is renamed into place only when
complete, so an interrupted download never leaves a file that would be taken for the dataset.
This module must not touch an existing file, and fetches only http(s) URLs.

Progress is reported through a ``ProgressCallback``; ``TerminalProgress`` is the one the CLI
uses (a bar on a terminal, one plain line otherwise). Without a callback, a download logs its
progress at INFO every 10% (the server's start-up download).
"""

from __future__ import annotations

import http.client
import logging
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, TextIO

from llmsim.datasets.store import DatasetError

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

log = logging.getLogger(__name__)

_CHUNK = 1 << 20

ProgressCallback = Callable[[int, int | None], None]
"""Called as work advances with ``(done, total)``: bytes or items so far, and the total when
known (None otherwise). ``done`` never decreases."""

ProgressOption = bool | ProgressCallback | None
"""What a ``progress`` parameter takes: a callback, True for a ``TerminalProgress`` on stderr,
False or None for none (a download without one logs at INFO instead, see ``ensure_dataset``)."""

_LOG_STEP = 0.1
"""A download with no progress callback logs every 10% of its size..."""
_LOG_BYTES = 100_000_000
"""... or, its size unknown, every 100 MB."""


def human_size(size: int) -> str:
    """A byte count for people: ``812 B``, ``12.3 kB``, ``1.2 MB``."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            break
    return f"{value:.1f} {unit}"


class TerminalProgress:
    """A ``ProgressCallback`` that draws a progress bar on ``stream`` (default: stderr at the
    time of the first call) when it is a terminal, and otherwise writes one plain line when the
    work starts (``label: size``), so logs and pipes stay clean. ``unit`` is ``bytes`` (sizes,
    speed) or a plural noun counted as ``done/total``. Use it as a context manager, or call
    ``close`` when the work ends, so the bar is finished and the cursor moved past it.
    """

    def __init__(
        self,
        label: str,
        unit: str = "bytes",
        stream: TextIO | None = None,
        line_label: str | None = None,
    ) -> None:
        self.label = label
        """Shown before the bar."""
        self.line_label = line_label or label
        """Starts the plain line (it may be longer: it is not redrawn)."""
        self.unit = unit
        self._stream = stream
        self._started = False
        self._bar: RichProgress | None = None
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int | None) -> None:
        if not self._started:
            self._start(total)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total)

    def close(self) -> None:
        """Finish the bar (a no-op without one, or when already closed)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _start(self, total: int | None) -> None:
        self._started = True
        stream = self._stream if self._stream is not None else sys.stderr
        if not _is_terminal(stream):
            stream.write(f"{self.line_label}: {self._amount(total)}\n")
            stream.flush()
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        columns = (
            (DownloadColumn(), TransferSpeedColumn())
            if self.unit == "bytes"
            else (MofNCompleteColumn(), TextColumn(self.unit))
        )
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            *columns,
            TimeRemainingColumn(),
            console=Console(file=stream),
        )
        self._bar.start()
        self._task = self._bar.add_task(self.label, total=total)

    def _amount(self, total: int | None) -> str:
        if total is None:
            return "size unknown" if self.unit == "bytes" else f"{self.unit}: count unknown"
        return human_size(total) if self.unit == "bytes" else f"{total} {self.unit}"


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class _LogProgress:
    """Logs a download's progress at INFO: every 10% of a known size, else every 100 MB."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._next_share = 0.0
        self._next_bytes = _LOG_BYTES

    def __call__(self, done: int, total: int | None) -> None:
        if total:
            share = done / total
            if share >= self._next_share:
                log.info(
                    "downloading dataset %s: %d%% (%s of %s)",
                    self.url,
                    int(share * 100),
                    human_size(done),
                    human_size(total),
                )
                while self._next_share <= share:
                    self._next_share += _LOG_STEP
        elif done >= self._next_bytes:
            log.info("downloading dataset %s: %s (size unknown)", self.url, human_size(done))
            while self._next_bytes <= done:
                self._next_bytes += _LOG_BYTES


def ensure_dataset(
    path: Path, url: str | None, progress: ProgressOption = None, timeout: float = 60.0
) -> Path:
    """``path`` when it exists; otherwise the file downloaded from ``url`` to ``path``.

    Raises ``DatasetError`` when there is neither a file nor a URL, or when the download fails
    (an answer other than 200, an empty or short body, a network error). ``timeout`` bounds
    each network wait in seconds. ``progress`` is called with the bytes written so far and the
    size from Content-Length (None when the server sends none); True reports to stderr (a bar
    on a terminal, one line otherwise), False reports nothing, and None (the default) logs at
    INFO every 10%.
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
    report: ProgressCallback | None
    bar: TerminalProgress | None = None
    if progress is None:
        report = _LogProgress(url)
    elif progress is True:
        name = urllib.parse.urlsplit(url).path.rpartition("/")[2] or path.name
        report = bar = TerminalProgress(
            f"downloading {name}", "bytes", line_label=f"downloading {url}"
        )
    elif progress is False:
        report = None
    else:
        report = progress
    log.info("downloading dataset %s to %s", url, path)
    try:
        with out_file as out:
            try:
                _download(url, out, report, timeout)
            finally:
                if bar is not None:
                    bar.close()
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise DatasetError(f"cannot save the dataset to {path}: {exc}") from exc
        raise
    return path


def _download(url: str, out: BinaryIO, progress: ProgressCallback | None, timeout: float) -> None:
    """Write the body of ``url`` to the binary file ``out``, reporting to ``progress``."""
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
            if progress is not None:
                progress(0, total)
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                written += len(chunk)
                if progress is not None:
                    progress(written, total)
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
    log.info("downloaded dataset %s (%s)", url, human_size(written))
