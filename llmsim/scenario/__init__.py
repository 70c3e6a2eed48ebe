"""The declarative layer: the scenario model, its loaders and its overrides.

Nothing here knows about the server or the engine; a scenario is plain, validated data.
"""

from llmsim.scenario.loader import load_scenario, load_scenario_text
from llmsim.scenario.model import Scenario

__all__ = ["Scenario", "load_scenario", "load_scenario_text"]
