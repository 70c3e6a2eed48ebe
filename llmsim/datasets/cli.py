"""The ``llmsim dataset`` commands: build upstream SQLite datasets from conversation files.

The app is made by ``make_app(load_tokenizer)`` so that the main CLI can pass a loader that
knows more tokenizers than the simulated one. This module only parses arguments and reports;
the work is done in ``llmsim.datasets.convert`` and ``llmsim.datasets.download``. Progress goes
to stderr: a bar when it is a terminal, one plain line otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from llmsim.datasets.convert import convert
from llmsim.datasets.download import ensure_dataset, human_size
from llmsim.datasets.store import DEFAULT_TABLE, DatasetError
from llmsim.engine.hf_tokenizer import load_hf_tokenizer
from llmsim.engine.tokenizer import SimulatedTokenizer, Tokenizer
from llmsim.errors import StartupError

TokenizerLoader = Callable[[str], Tokenizer]
"""Turns a ``--tokenizer`` value into a tokenizer; raises ``DatasetError`` for unknown ones."""

SIMULATED = "simulated"


def load_tokenizer(spec: str) -> Tokenizer:
    """The tokenizer named by ``spec``: ``simulated``, a tokenizer file or model directory,
    or a model id in the local HuggingFace cache (as the scenario's ``model.tokenizer``)."""
    if spec == SIMULATED:
        return SimulatedTokenizer()
    if Path(spec).exists():
        return load_hf_tokenizer(path=spec)
    return load_hf_tokenizer(model_id=spec)


def make_app(tokenizers: TokenizerLoader = load_tokenizer) -> typer.Typer:
    """The ``dataset`` command group, resolving ``--tokenizer`` with ``tokenizers``."""
    app = typer.Typer(
        name="dataset",
        help="Build response datasets (upstream's SQLite format).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _group() -> None:
        """Build response datasets (upstream's SQLite format)."""

    @app.command("convert")
    def convert_command(
        source: Annotated[
            Path, typer.Argument(help="ShareGPT-style conversations: a JSON array or JSON Lines.")
        ],
        output: Annotated[Path, typer.Argument(help="The SQLite file to write.")],
        table: Annotated[str, typer.Option(help="Name of the dataset table.")] = DEFAULT_TABLE,
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists.")
        ] = False,
        tokenizer: Annotated[
            str, typer.Option(help="Tokenizer that keys the prompts and splits the replies.")
        ] = SIMULATED,
    ) -> None:
        """Build a SQLite response dataset from a ShareGPT-style JSON or JSONL file."""
        try:
            summary = convert(
                source,
                output,
                tokenizers(tokenizer),
                table=table,
                overwrite=overwrite,
                progress=True,
            )
        except StartupError as exc:  # a DatasetError, or a tokenizer that cannot be loaded
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(
            f"wrote {summary.rows} rows to {output} "
            f"(skipped {summary.skipped}, {human_size(summary.size_bytes)})"
        )

    @app.command("download")
    def download_command(
        url: Annotated[str, typer.Argument(help="An http(s) URL of a dataset file.")],
        output: Annotated[Path, typer.Argument(help="Where to save it.")],
        overwrite: Annotated[
            bool, typer.Option("--overwrite", help="Replace OUTPUT if it exists.")
        ] = False,
        timeout: Annotated[
            float, typer.Option(help="Seconds to wait for the server at each step.", min=0.1)
        ] = 60.0,
    ) -> None:
        """Download a dataset file (as a scenario's dataset url is fetched at start)."""
        if output.exists() and not overwrite:
            typer.echo(f"error: {output} already exists (pass --overwrite to replace it)", err=True)
            raise typer.Exit(1)
        # Into a fresh name first: an existing OUTPUT is replaced only by a complete download.
        target = (
            output.with_name(f".{output.name}.{os.getpid()}.new") if output.exists() else output
        )
        try:
            ensure_dataset(target, url, progress=True, timeout=timeout)
            if target != output:
                os.replace(target, output)
        except (DatasetError, OSError) as exc:
            if target != output:
                target.unlink(missing_ok=True)
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
        typer.echo(f"downloaded {url} to {output} ({human_size(output.stat().st_size)})")

    return app


app = make_app()
"""The ``dataset`` command group with the simulated tokenizer only."""
