"""The ``llmsim`` command line: run, validate, schema, plan."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from llmsim import __version__
from llmsim.datasets.cli import app as dataset_app
from llmsim.errors import ScenarioError, ScenarioProblem, StartupError
from llmsim.scenario.loader import load_scenario
from llmsim.scenario.model import Scenario

app = typer.Typer(
    name="llmsim",
    help="A declarative, scenario-driven simulator of a vLLM inference server.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ScenarioArg = Annotated[
    Path | None,
    typer.Argument(help="Scenario file (.yaml, .yml, .toml). Default: the built-in scenario."),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY.PATH=VALUE",
        help="Override any scenario key, e.g. --set latency.time-to-first-token=500ms.",
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmsim {__version__}")
        raise typer.Exit()


app.add_typer(dataset_app, name="dataset", help="Response datasets: convert, …")


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """A declarative, scenario-driven simulator of a vLLM inference server."""


def _load_or_exit(path: Path | None, overrides: list[str]) -> Scenario:
    try:
        return load_scenario(path, overrides)
    except ScenarioError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None


@app.command()
def run(
    scenario: ScenarioArg = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (server.port).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (server.host).")] = None,
    model: Annotated[str | None, typer.Option(help="Model name to serve (model.name).")] = None,
    set_: SetOption = None,
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request.")] = False,
) -> None:
    """Serve a scenario (the built-in default when none is given)."""
    from llmsim.plan.compile import compile_scenario
    from llmsim.server.runner import serve

    overrides = list(set_ or [])
    for key, value in (("server.port", port), ("server.host", host), ("model.name", model)):
        if value is not None:
            overrides.append(f"{key}={json.dumps(value)}")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    loaded = _load_or_exit(scenario, overrides)
    if loaded.server.data_parallel_size > 1:
        from llmsim.server.ranks import serve_ranks

        raise typer.Exit(serve_ranks(loaded, access_log=access_log))
    plan = compile_scenario(loaded)
    try:
        serve(plan, access_log=access_log)
    except StartupError as exc:
        typer.echo(f"llmsim: {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Scenario files to check.")],
    format_: Annotated[
        str, typer.Option("--format", help="Output: text (file:line:col: key: message) or json.")
    ] = "text",
) -> None:
    """Check scenario files; print every problem and exit 1 if there is any."""
    if format_ not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--format")
    problems: list[ScenarioProblem] = []
    report: list[dict[str, Any]] = []
    for file in files:
        try:
            load_scenario(file)
            found: list[ScenarioProblem] = []
        except ScenarioError as exc:
            found = exc.problems
        problems.extend(found)
        report.append(
            {"file": str(file), "valid": not found, "problems": [p.as_dict() for p in found]}
        )
        if format_ == "text":
            for problem in found:
                typer.echo(str(problem))
            if not found:
                typer.echo(f"{file}: ok")
    if format_ == "json":
        typer.echo(json.dumps(report, indent=2))
    raise typer.Exit(1 if problems else 0)


@app.command()
def schema(
    format_: Annotated[
        str, typer.Option("--format", help="json (JSON Schema) or markdown (reference table).")
    ] = "json",
) -> None:
    """Print the scenario file's JSON Schema, or its reference table in Markdown."""
    if format_ == "json":
        typer.echo(scenario_schema_text(), nl=False)
    elif format_ == "markdown":
        from llmsim.scenario.reference import reference_markdown

        typer.echo(reference_markdown(), nl=False)
    else:
        raise typer.BadParameter("use json or markdown", param_hint="--format")


def scenario_schema_text() -> str:
    """The JSON Schema of scenario files, as ``schemas/scenario.schema.json`` holds it."""
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://llmsim.dev/schemas/scenario.schema.json",
        **Scenario.model_json_schema(by_alias=True),
    }
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


@app.command()
def plan(scenario: ScenarioArg = None, set_: SetOption = None) -> None:
    """Print the runtime plan a scenario compiles to."""
    from llmsim.plan.compile import compile_scenario
    from llmsim.plan.describe import describe_plan

    loaded = _load_or_exit(scenario, list(set_ or []))
    typer.echo(
        describe_plan(compile_scenario(loaded), seed_given=loaded.seed is not None), nl=False
    )


def main() -> None:
    """Console-script entry point."""
    app(prog_name="llmsim", args=sys.argv[1:])
