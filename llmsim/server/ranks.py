"""Data parallelism: one process per rank, on consecutive ports, supervised by the parent.

Each rank is a whole simulator of its own (engine, queue, metrics, KV cache and KV-event
endpoint, admin config) with the same seed, as vLLM's data-parallel ranks are independent
engines (DP-1). The parent only supervises: SIGTERM or SIGINT is passed on to every rank, which
drains and exits; when a rank dies on its own, the parent reports it, stops the others and exits
1, so that the pod restarts whole (ranks are not restarted one by one: a router would see a rank
come back with an empty cache and fresh metrics, which a real engine does not do).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess

from llmsim.errors import StartupError
from llmsim.scenario.model import Scenario

log = logging.getLogger("llmsim")


def _rank_main(scenario: Scenario, seed: int, rank: int, access_log: bool) -> None:
    """A rank process: compile the scenario for this rank and serve it."""
    from llmsim.plan.compile import compile_scenario
    from llmsim.server.runner import serve

    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s rank{rank} %(name)s: %(message)s",
    )
    try:
        serve(compile_scenario(scenario, default_seed=seed, dp_rank=rank), access_log=access_log)
    except StartupError as exc:
        log.error("rank %d: %s", rank, exc)
        raise SystemExit(1) from None


def serve_ranks(scenario: Scenario, access_log: bool = False) -> int:
    """Run ``data-parallel-size`` ranks until they stop; the exit status for the parent: 0
    when every rank stopped because it was asked to, 1 when one died on its own."""
    size = scenario.server.data_parallel_size
    seed = scenario.seed if scenario.seed is not None else time.time_ns()
    context = multiprocessing.get_context("spawn")
    ranks: dict[int, BaseProcess] = {}
    for rank in range(size):
        process = context.Process(
            target=_rank_main, args=(scenario, seed, rank, access_log), name=f"llmsim-rank{rank}"
        )
        process.start()
        ranks[rank] = process
    log.info(
        "llmsim: %d data-parallel ranks on ports %d-%d",
        size,
        scenario.server.port,
        scenario.server.port + size - 1,
    )
    stopping = False

    def stop_all(signum: int = signal.SIGTERM, frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for process in ranks.values():
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    status = 0
    alive = dict(ranks)
    while alive:
        ended = wait([process.sentinel for process in alive.values()])
        for rank, child in list(alive.items()):
            if child.sentinel not in ended:
                continue
            child.join()
            del alive[rank]
            if not stopping:
                log.error(
                    "rank %d (pid %s, port %d) exited with code %s; stopping the other ranks",
                    rank,
                    child.pid,
                    scenario.server.port + rank,
                    child.exitcode,
                )
                status = 1
                stop_all()
            elif child.exitcode != 0:
                log.error("rank %d exited with code %s", rank, child.exitcode)
                status = 1
    return status
