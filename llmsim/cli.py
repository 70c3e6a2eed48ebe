"""The ``llmsim`` command line: run, validate, schema, plan."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from llmsim import __version__
from llmsim.calibration.cli import register as register_calibration
from llmsim.datasets.cli import app as dataset_app
from llmsim.errors import ScenarioError, ScenarioProblem, StartupError
from llmsim.scenario.loader import LoadedScenario, load_scenario, read_scenario
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


_UPSTREAM_ARGS = "llmsim.upstream_args"


class _RunCommand(TyperCommand):
    """``llmsim run``: the upstream simulator's flags among its arguments are set aside (with
    their values) for the upstream flag parser; the rest is parsed as usual."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        from llmsim.upstream.flags import split_args

        own, upstream = split_args(
            args,
            own_values=frozenset({"--port", "--host", "--model", "--set"}),
            own_switches=frozenset({"--access-log", "--no-access-log", "--help"}),
        )
        if "-h" in upstream:
            own.append("--help")
        ctx.meta[_UPSTREAM_ARGS] = upstream
        return super().parse_args(ctx, own)


@app.command(
    cls=_RunCommand,
    epilog=(
        "Upstream flags (llm-d-inference-sim's: --max-num-seqs 8, --time-to-first-token=2s,"
        " --config FILE, --v=4, ...; see llm-d-inference-sim --help) may follow, over the"
        " scenario. Precedence: --set and flags > environment (SIM_MODEL, PYTHONHASHSEED,"
        " LLMSIM_*) > scenario file > default. With no scenario file, upstream flags or --model"
        " start from upstream's defaults (as llm-d-inference-sim does) instead of the built-in"
        " scenario."
    ),
)
def run(
    ctx: typer.Context,
    scenario: ScenarioArg = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (server.port).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (server.host).")] = None,
    model: Annotated[str | None, typer.Option(help="Model name to serve (model.name).")] = None,
    set_: SetOption = None,
    access_log: Annotated[bool, typer.Option(help="Log every HTTP request.")] = False,
) -> None:
    """Serve a scenario (the built-in default when none is given)."""
    from llmsim.upstream.entry import LOG_FORMAT, tell
    from llmsim.upstream.flags import Assignment, FlagError
    from llmsim.upstream.settings import run_scenario

    upstream_args: list[str] = ctx.meta.get(_UPSTREAM_ARGS, [])
    options = [
        Assignment(path, value, flag)
        for path, value, flag in (
            (("server", "port"), port, "--port"),
            (("server", "host"), host, "--host"),
            (("model", "name"), model, "--model"),
        )
        if value is not None
    ]
    try:
        built = run_scenario(
            str(scenario) if scenario is not None else None,
            upstream_args,
            list(set_ or []),
            options,
            upstream_defaults=bool(upstream_args) or model is not None,
        )
    except FlagError as exc:
        typer.echo(f"llmsim run: {exc}", err=True)
        raise typer.Exit(2) from None
    except ScenarioError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None
    logging.basicConfig(level=built.parsed.log_level, format=LOG_FORMAT)
    tell(built.notes)
    raise typer.Exit(
        serve_scenario(
            built.scenario,
            access_log=access_log or built.scenario.server.log_http,
            debug=built.parsed.log_level <= logging.DEBUG,
        )
    )


def serve_scenario(scenario: Scenario, access_log: bool = False, debug: bool = False) -> int:
    """Compile and serve ``scenario`` (its data-parallel ranks when there are several) until
    stopped; the exit status."""
    from llmsim.plan.compile import compile_scenario
    from llmsim.server.runner import serve

    if scenario.server.data_parallel_size > 1:
        from llmsim.server.ranks import serve_ranks

        return serve_ranks(scenario, access_log=access_log)
    plan = compile_scenario(scenario)
    try:
        serve(plan, access_log=access_log, log_level="debug" if debug else "info")
    except StartupError as exc:
        typer.echo(f"llmsim: {exc}", err=True)
        return 1
    return 0


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Scenario files to check.")],
    format_: Annotated[
        str, typer.Option("--format", help="Output: text (file:line:col: key: message) or json.")
    ] = "text",
) -> None:
    """Check scenario files; print every problem and exit 1 if there is any. An upstream flat
    config is accepted (mapped onto sections): the output says so, with its warnings."""
    from llmsim.plan.describe import scenario_summary

    if format_ not in ("text", "json"):
        raise typer.BadParameter("use text or json", param_hint="--format")
    problems: list[ScenarioProblem] = []
    report: list[dict[str, Any]] = []
    for file in files:
        loaded: LoadedScenario | None = None
        try:
            loaded = read_scenario(file)
            found: list[ScenarioProblem] = []
        except ScenarioError as exc:
            found = exc.problems
        problems.extend(found)
        entry = {"file": str(file), "valid": not found, "problems": [p.as_dict() for p in found]}
        if loaded is not None:
            entry["summary"] = scenario_summary(loaded.scenario)
        if loaded is not None and loaded.flat:
            entry["flat"] = True
            entry["warnings"] = [note.as_dict() for note in loaded.notes]
        report.append(entry)
        if format_ == "text":
            for problem in found:
                typer.echo(str(problem))
            if loaded is not None and loaded.flat:
                typer.echo(f"{file}: ok (an upstream flat config, mapped onto scenario sections)")
                for note in loaded.notes:
                    typer.echo(str(note))
            elif loaded is not None:
                typer.echo(f"{file}: ok ({scenario_summary(loaded.scenario)})")
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
def plan(
    scenario: ScenarioArg = None,
    set_: SetOption = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            metavar="OUT.png",
            help=(
                "Also draw the latency distributions and the phase timeline to this PNG"
                " (needs matplotlib: pip install 'llmsim[plot]')."
            ),
        ),
    ] = None,
) -> None:
    """Print the runtime plan a scenario compiles to."""
    from llmsim.plan.compile import compile_scenario
    from llmsim.plan.describe import describe_plan

    loaded = _load_or_exit(scenario, list(set_ or []))
    compiled = compile_scenario(loaded)
    seed_given = loaded.seed is not None
    if plot is not None:
        from llmsim.plan.plot import PlotUnavailable, draw_plan

        try:
            draw_plan(compiled, plot, seed_given=seed_given)
        except PlotUnavailable as exc:
            typer.echo(f"llmsim plan: {exc}", err=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            typer.echo(f"llmsim plan: cannot write {plot}: {exc}", err=True)
            raise typer.Exit(1) from None
    typer.echo(describe_plan(compiled, seed_given=seed_given), nl=False)
    if plot is not None:
        typer.echo(f"llmsim plan: plot written to {plot}", err=True)


@app.command()
def migrate(
    file: Annotated[Path, typer.Argument(help="An upstream (llm-d-inference-sim) flat config.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Rewrite an upstream flat config file as a sectioned scenario (same plan)."""
    from llmsim.upstream.migrate import migrate_file

    try:
        text, loaded = migrate_file(file)
    except ScenarioError as exc:
        for problem in exc.problems:
            typer.echo(str(problem), err=True)
        raise typer.Exit(1) from None
    for note in loaded.notes:
        typer.echo(str(note), err=True)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


register_calibration(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="llmsim", args=sys.argv[1:])
