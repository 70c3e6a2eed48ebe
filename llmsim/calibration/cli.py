"""The ``llmsim calibrate`` and ``llmsim replay`` commands.

``register(app)`` adds both to the main Typer app. This module parses arguments, resolves the
defaults from the files beside a trace (``exp-config.yaml``, ``vllm.log``) and prints; the work
is done in ``traces``, ``fit``, ``profile`` and ``replay``. Errors a user can fix (a file that
is not a trace, a server that does not answer) are one line on stderr and exit status 2; no
traceback.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:  # the work is imported when a command runs: `llmsim run` starts faster
    from llmsim.calibration.fit import Calibration
    from llmsim.calibration.replay import ReplayReport
    from llmsim.calibration.traces import TraceRecord

TracesArg = Annotated[
    list[Path],
    typer.Argument(
        help=(
            "vLLM request traces: OTLP/JSON files (one export per line), or folders holding"
            " a traces.json."
        ),
        show_default=False,
    ),
]

TRACE_FILE = "traces.json"


def register(app: typer.Typer) -> None:
    """Add ``calibrate`` and ``replay`` to ``app``."""
    app.command()(calibrate)
    app.command()(replay)


def _trace_files(paths: list[Path]) -> list[Path]:
    files = []
    for path in paths:
        if path.is_dir():
            candidate = path / TRACE_FILE
            if not candidate.is_file():
                _fail(f"{path}: a folder without a {TRACE_FILE}")
            files.append(candidate)
        else:
            files.append(path)
    return files


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"llmsim: {message}", err=True)
    raise typer.Exit(code)


def _read(paths: list[Path]) -> list[TraceRecord]:
    from llmsim.calibration.traces import TraceError, read_traces

    try:
        return read_traces(paths)
    except TraceError as exc:
        _fail(str(exc), exc.exit_code)


def human(seconds: float) -> str:
    """A duration with four significant digits and a unit (``6.271ms``, ``176.5ns``)."""
    if seconds == 0:
        return "0s"
    if not math.isfinite(seconds):
        return str(seconds)
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.4g}{unit}"
    return f"{seconds / 1e-9:.4g}ns"


def calibrate(
    traces: TracesArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the fitted profile (YAML) here.")
    ] = None,
    max_num_batched_tokens: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=(
                "The traced server's token budget per step. Default: from exp-config.yaml or"
                " vllm.log beside the first trace."
            ),
        ),
    ] = None,
    max_num_seqs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="The traced server's max-num-seqs. Default: as above, else 256 (vLLM's).",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="The profile's name. Default: the output file's stem."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="The model traced. Default: from exp-config.yaml or vllm.log."),
    ] = None,
    gpu: Annotated[str, typer.Option(help="The GPU traced (the profile's gpu).")] = "unknown",
    context: Annotated[
        bool,
        typer.Option(
            "--context/--no-context",
            help="Fit per-context-token too (else only base, per-prefill and per-decode).",
        ),
    ] = True,
    kv_cache_tokens: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=(
                "The traced server's KV cache (tokens), for the simulated check. Default: from"
                " vllm.log ('GPU KV cache size'), else unbounded."
            ),
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the coefficients and figures as JSON.")
    ] = False,
) -> None:
    """Fit engine step-time coefficients to vLLM request traces.

    Fits the batched engine's step-time and request-overhead coefficients, prints them with
    the fit quality (and how the engine model replays the traces' arrivals with them), and
    writes them as a profile file with -o."""
    from llmsim.calibration.fit import FitError, fit
    from llmsim.calibration.profile import ProfileInfo, profile_text
    from llmsim.calibration.runinfo import read_run_info

    files = _trace_files(traces)
    records = _read(files)
    info = read_run_info(files[0])
    budget = max_num_batched_tokens or info.max_num_batched_tokens
    if budget is None:
        _fail(
            "the traced server's max-num-batched-tokens is not known: give"
            " --max-num-batched-tokens (no exp-config.yaml or vllm.log beside"
            f" {files[0]} says it)"
        )
    seqs = max_num_seqs or info.max_num_seqs or 256
    kv_tokens = kv_cache_tokens or info.kv_cache_tokens
    try:
        calibration = fit(
            records,
            max_num_batched_tokens=budget,
            max_num_seqs=seqs,
            context=context,
            kv_cache_tokens=kv_tokens,
        )
    except FitError as exc:
        _fail(str(exc))
    profile_name = name or (output.stem if output is not None else f"{files[0].parent.name}")
    profile_info = ProfileInfo(
        name=profile_name,
        model=model or info.model or "unknown",
        gpu=gpu,
        tensor_parallel_size=info.tensor_parallel_size or 1,
        vllm_version=info.vllm_version,
    )
    if output is not None:
        text = profile_text(calibration, profile_info, [str(f) for f in files])
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            _fail(f"cannot write {output}: {exc}", 1)
    if as_json:
        document = calibration.as_dict()
        document["files"] = [str(f) for f in files]
        document["settings_from"] = info.sources
        document["profile"] = str(output) if output is not None else None
        typer.echo(json.dumps(document, indent=2))
        return
    typer.echo(_calibration_text(calibration, files, info.sources))
    if output is not None:
        typer.echo(f"profile written to {output}")


def _calibration_text(c: Calibration, files: list[Path], sources: list[str]) -> str:
    step, overhead = c.step, c.overhead
    plural = "s" if len(files) > 1 else ""
    settings = f" (from {', '.join(Path(s).name for s in sources)})" if sources else ""
    lines = [
        f"fitted {c.requests} requests from {len(files)} trace file{plural}:"
        f" {c.observations} observations, {c.outliers} set aside as outliers",
        f"engine:           max-num-batched-tokens {c.max_num_batched_tokens},"
        f" max-num-seqs {c.max_num_seqs}{settings}",
        "step time:        "
        f"base {human(step.base)} + {human(step.per_prefill_token)} x prompt token"
        f" + {human(step.per_decode_token)} x decoding sequence"
        f" + {human(step.per_context_token)} x context token",
        "request overhead: "
        f"{human(overhead.base)} + {human(overhead.per_input_token)} x prompt token before"
        f" the queue; {human(overhead.per_output_token)} x output token after the last step",
        "",
        "fit quality                     R^2     mean abs error",
    ]
    for label, agreement in (
        ("step observations", c.step_fit),
        ("prefill time, per request", c.prefill),
        ("decode time, per request", c.decode),
        ("mean ITL, per request", c.itl),
    ):
        lines.append(
            f"  {label:<28}{agreement.r_squared:>7.4f}   {agreement.mean_abs_pct_error:>6.2f}%"
        )
    if c.simulated:
        kv = (
            f"KV cache {c.kv_cache_tokens:,} tokens"
            if c.kv_cache_tokens is not None
            else "KV cache unbounded"
        )
        lines += [
            "",
            f"the engine model on the traces' arrivals ({kv}):",
            "           recorded mean  simulated   error   recorded p90  simulated   error",
        ]
        for metric, value in c.simulated.items():
            lines.append(
                f"  {metric.upper():<8} {human(value.recorded_mean):>12}"
                f" {human(value.simulated_mean):>10}"
                f" {value.mean_error_pct:>+7.1f}% {human(value.recorded_p90):>13}"
                f" {human(value.simulated_p90):>10} {value.p90_error_pct:>+7.1f}%"
            )
    return "\n".join(lines)


def replay(
    traces: TracesArg,
    url: Annotated[
        str, typer.Option(help="The OpenAI-compatible server (http://host:port).")
    ] = "http://127.0.0.1:8000",
    model: Annotated[
        str | None,
        typer.Option(help="The model to ask for. Default: the first one GET /v1/models lists."),
    ] = None,
    time_scale: Annotated[
        float,
        typer.Option(
            help=(
                "Multiply the arrival offsets by this, and divide the measured latencies by it"
                " (for a server whose time runs S times slower)."
            ),
        ),
    ] = 1.0,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Replay only the first N requests.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds allowed to each request.")] = 300.0,
    per_request: Annotated[
        bool, typer.Option("--per-request", help="Print a line per request.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write every request's figures here (JSON Lines)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the aggregate as JSON.")] = False,
) -> None:
    """Replay vLLM request traces against a server and compare latencies.

    Sends each traced request at its recorded arrival (a streamed /v1/completions with a
    token-id prompt of the recorded length and exactly the recorded output tokens), and
    compares the server's TTFT, ITL and E2E with the recorded ones. Exits 1 when no request
    succeeds, 2 when the server cannot be reached."""
    if not time_scale > 0:
        raise typer.BadParameter("must be positive", param_hint="--time-scale")
    if not timeout > 0:
        raise typer.BadParameter("must be positive", param_hint="--timeout")
    try:
        import httpx  # noqa: F401
    except ImportError:
        _fail("llmsim replay needs httpx: pip install 'llmsim[bench]'")
    from llmsim.calibration.replay import ReplayError
    from llmsim.calibration.replay import replay as run_replay

    files = _trace_files(traces)
    records = _read(files)
    if limit is not None:
        records = records[:limit]

    def started(chosen: str, count: int, span: float) -> None:
        typer.echo(
            f"replaying {count} requests over {span:.1f} s against {url} (model {chosen})",
            err=True,
        )

    try:
        report = asyncio.run(run_replay(records, url, model, time_scale, timeout, started))
    except ReplayError as exc:
        _fail(str(exc), exc.exit_code)
    if output is not None:
        try:
            with output.open("w", encoding="utf-8") as sink:
                for measurement in report.measurements:
                    sink.write(json.dumps(measurement.as_dict()) + "\n")
        except OSError as exc:
            _fail(f"cannot write {output}: {exc}", 1)
    if per_request:
        typer.echo(_per_request_text(report))
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(_report_text(report))
    if report.succeeded == 0:
        raise typer.Exit(1)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.1f}"


def _err(measured: float | None, recorded: float | None) -> str:
    if measured is None or recorded is None or recorded == 0:
        return "-"
    return f"{100.0 * (measured - recorded) / recorded:+.1f}%"


def _per_request_text(report: ReplayReport) -> str:
    lines = [
        "    #   arrival     in   out  status     TTFT ms rec/meas    err     ITL ms rec/meas"
        "    err      E2E ms rec/meas     err"
    ]
    for m in report.measurements:
        status = "ok" if m.ok else (m.error or "failed")
        lines.append(
            f"{m.index:>5} {m.arrival:>9.3f} {m.prompt_tokens:>6} {m.completion_tokens:>5}"
            f"  {status[:9]:<9} {_ms(m.recorded_ttft):>9}/{_ms(m.ttft):<9}"
            f" {_err(m.ttft, m.recorded_ttft):>7}"
            f" {_ms(m.recorded_itl):>8}/{_ms(m.itl):<8} {_err(m.itl, m.recorded_itl):>7}"
            f" {_ms(m.recorded_e2e):>9}/{_ms(m.e2e):<9} {_err(m.e2e, m.recorded_e2e):>7}"
        )
    return "\n".join(lines)


def _report_text(report: ReplayReport) -> str:
    lines = [
        f"{len(report.measurements)} requests to {report.url} (model {report.model}) in"
        f" {report.duration:.1f} s: {report.succeeded} succeeded, {report.failed} failed",
    ]
    for reason, count in sorted(report.failures.items()):
        lines.append(f"  failed: {count} x {reason}")
    aggregate = report.aggregate()
    if aggregate:
        lines += [
            "",
            "         recorded mean   measured    error   recorded p90   measured    error",
        ]
        for metric, value in aggregate.items():
            lines.append(
                f"  {metric.upper():<6} {human(value.recorded_mean):>13}"
                f" {human(value.measured_mean):>10}"
                f" {value.mean_error_pct:>+7.1f}% {human(value.recorded_p90):>14}"
                f" {human(value.measured_p90):>10} {value.p90_error_pct:>+7.1f}%"
            )
    return "\n".join(lines)
