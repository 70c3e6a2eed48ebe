"""The ``llm-d-inference-sim`` console script: the upstream simulator's command line, served by
llmsim.

Manifests and Helm values written for the upstream image start it as
``llm-d-inference-sim --model … --port …`` (or give only the flags); this entry point takes the
same command line with upstream's meaning and serves it the way ``llmsim run`` serves a
scenario. Exit status: 0 after a graceful stop, 1 for a configuration or start-up problem, 2 for
a command line upstream would refuse.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from llmsim.errors import ScenarioError
from llmsim.upstream.flags import FlagError, help_text
from llmsim.upstream.settings import UPSTREAM_NAME, upstream_scenario

log = logging.getLogger("llmsim")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def tell(notes: Sequence[tuple[str, str]]) -> None:
    """Log the notes of a configuration: warnings as warnings, the rest as information."""
    for level, text in notes:
        log.log(logging.WARNING if level == "warning" else logging.INFO, "%s", text)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        sys.stdout.write(help_text(UPSTREAM_NAME))
        raise SystemExit(0)
    try:
        built = upstream_scenario(args)
    except FlagError as exc:
        sys.stderr.write(f"{UPSTREAM_NAME}: {exc}\n")
        raise SystemExit(2) from None
    except ScenarioError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        raise SystemExit(1) from None
    logging.basicConfig(level=built.parsed.log_level, format=LOG_FORMAT)
    tell(built.notes)
    from llmsim.cli import serve_scenario

    raise SystemExit(
        serve_scenario(
            built.scenario,
            access_log=built.scenario.server.log_http,
            debug=built.parsed.log_level <= logging.DEBUG,
        )
    )
