"""One simulated rank: its engine, its metrics exposition and the plan in force.

``apply`` swaps in a new plan atomically (one event loop, no await): requests that started
before keep the plan they captured; later ones see the new one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from llmsim.engine.engine import Engine
from llmsim.metrics.collector import ExpositionState, SimulatorCollector
from llmsim.plan.plan import RuntimePlan


class Simulator:
    """The engine and everything that observes it, for one rank."""

    def __init__(self, plan: RuntimePlan):
        self.engine = Engine(plan)
        self.active_phase: str | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = SimulatorCollector(self.engine.metrics, self._exposition(plan))
        self.registry.register(self.collector)

    @property
    def plan(self) -> RuntimePlan:
        """The plan new requests see."""
        return self.engine.plan

    def apply(self, plan: RuntimePlan) -> None:
        """Make ``plan`` the one new requests see."""
        self.engine.plan = plan
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
            max_loras=plan.max_loras,
            block_size=plan.block_size,
            num_gpu_blocks=plan.kv_cache_size,
            fake=plan.fake_metrics,
            fake_refresh_interval=plan.fake_metrics_refresh_interval,
            active_phase=self.active_phase,
        )
