"""The runtime plan: a scenario compiled into immutable, ready-to-run objects."""

from llmsim.plan.compile import compile_scenario
from llmsim.plan.plan import LatencyPlan, ModelPlan, RuntimePlan

__all__ = ["LatencyPlan", "ModelPlan", "RuntimePlan", "compile_scenario"]
