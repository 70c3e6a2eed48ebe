"""One simulated rank: its engine, its metrics exposition, its KV-event publisher and the plan
in force.

``apply`` swaps in a new plan atomically (one event loop, no await): requests that started
before keep the plan they captured; later ones see the new one. The environment is read here,
once: ``POD_IP`` names the rank in KV-event topics, ``VLLM_SERVER_DEV_MODE=1`` allows sleep.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, generate_latest

from llmsim.engine.engine import Engine
from llmsim.errors import StartupError
from llmsim.events.publisher import KVEventPublisher
from llmsim.metrics.collector import ExpositionState, SimulatorCollector
from llmsim.plan.plan import RuntimePlan
from llmsim.server.http_metrics import HttpRequests

PHASE_CHECK_INTERVAL = 0.25


class Simulator:
    """The engine and everything that observes it, for one rank."""

    def __init__(self, plan: RuntimePlan, environ: Mapping[str, str] | None = None):
        environ = os.environ if environ is None else environ
        self.engine = Engine(plan)
        self.dev_mode = environ.get("VLLM_SERVER_DEV_MODE", "") == "1"
        self._ticker: asyncio.Task[None] | None = None
        self._ready_at: float | None = None
        self.publisher = _publisher(plan, environ)
        if self.engine.kv is not None:
            self.engine.kv.sink = self.publisher
        self.http_requests = HttpRequests()
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = SimulatorCollector(self.engine.metrics, self._exposition(plan))
        self.registry.register(self.collector)

    async def startup(self) -> None:
        """The server is up: phases start counting, readiness waits for ``startup-duration``;
        open the KV-event sockets, if any."""
        self.engine.phases.mark_ready()
        self._ready_at = time.monotonic() + (
            self.plan.scenario.server.startup_duration * self.plan.time_scale
        )
        if self.plan.phases:
            self._ticker = asyncio.get_running_loop().create_task(self._follow_phases())
        if self.publisher is not None:
            await self.publisher.start()

    async def _follow_phases(self) -> None:
        """Look at the phases a few times a second, so that changes are logged without traffic."""
        while True:
            _ = self.engine.plan
            await asyncio.sleep(PHASE_CHECK_INTERVAL)

    async def shutdown(self) -> None:
        """Stop following phases; flush pending KV events and close the sockets."""
        if self._ticker is not None:
            self._ticker.cancel()
        if self.publisher is not None:
            await self.publisher.close()

    def ready(self) -> bool:
        """Whether ``startup-duration`` has passed since start-up (API-HEALTH-1)."""
        return self._ready_at is not None and time.monotonic() >= self._ready_at

    def sleep(self) -> None:
        """``POST /sleep``: only with enable-sleep-mode and VLLM_SERVER_DEV_MODE=1 (SLEEP-1)."""
        if self.plan.enable_sleep_mode and self.dev_mode:
            self.engine.sleep()

    @property
    def plan(self) -> RuntimePlan:
        """The base plan: the scenario as configured, before phases overlay it."""
        return self.engine.base_plan

    def apply(self, plan: RuntimePlan) -> None:
        """Make ``plan`` the base plan new requests see (phases still overlay it)."""
        self.engine.set_base_plan(plan)
        self.collector.state = self._exposition(plan)

    def metrics_text(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def _exposition(self, plan: RuntimePlan) -> ExpositionState:
        scheduler = self.engine.scheduler
        return ExpositionState(
            model_name=plan.model.display_name,
            scenario_name=plan.scenario_name,
            running=lambda: scheduler.running,
            waiting=lambda: scheduler.waiting,
            kv_usage=self._kv_usage,
            max_loras=plan.max_loras,
            block_size=plan.scenario.kv_cache.block_size,
            num_gpu_blocks=plan.scenario.kv_cache.kv_cache_size,
            fake=plan.fake_metrics,
            fake_refresh_interval=plan.fake_metrics_refresh_interval,
            active_phase=self.engine.phases.active_name,
            http_requests=self.http_requests.totals,
        )

    def _kv_usage(self) -> float:
        kv = self.engine.kv
        return kv.usage() if kv is not None and self.engine.kv_awake else 0.0


def _publisher(plan: RuntimePlan, environ: Mapping[str, str]) -> KVEventPublisher | None:
    """The KV-event publisher when the cache is on and events have an endpoint (ZMQ-1)."""
    kv = plan.kv
    if kv is None or not kv.zmq_endpoint:
        return None
    pod_ip = environ.get("POD_IP", "")
    if not pod_ip:
        raise StartupError("IP should be defined in the environment (POD_IP) for KV cache to work")
    return KVEventPublisher(
        endpoint=kv.zmq_endpoint,
        topic=f"kv@{pod_ip}:{plan.port}@{plan.model.name}",
        batch_size=kv.event_batch_size,
        map_format=kv.map_event_format,
        data_parallel_rank=plan.rank,
        replay_endpoint=kv.replay_endpoint,
        replay_queue_size=kv.replay_queue_size,
    )
