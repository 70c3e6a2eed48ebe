"""The adapters a rank serves: those of the scenario, plus any loaded at run time (LORA-2, 3).

The registry only knows names and paths; which adapters are loaded into the (simulated) GPU
slots is the scheduler's business. Adapters loaded at run time live here, not in the plan, so a
runtime reconfiguration keeps them. Load and unload answer as vLLM does.
"""

from __future__ import annotations

from llmsim.errors import BadRequest, NotFound


class LoraRegistry:
    """Adapter names and paths, in the order they were added."""

    def __init__(self, modules: list[tuple[str, str]]):
        self._paths: dict[str, str] = dict(modules)

    def __contains__(self, name: object) -> bool:
        return name in self._paths

    def items(self) -> list[tuple[str, str]]:
        """``(name, path)`` of every adapter, in the order they were added."""
        return list(self._paths.items())

    def load(self, name: str, path: str) -> None:
        """Add an adapter; 400 when a name or path is missing or the name is taken."""
        if not name or not path:
            raise BadRequest("Both 'lora_name' and 'lora_path' must be provided.")
        if name in self._paths:
            raise BadRequest(f"The lora adapter '{name}' has already been loaded.")
        self._paths[name] = path

    def unload(self, name: str) -> None:
        """Remove an adapter; 404 when it is not there."""
        if not name:
            raise BadRequest("either 'lora_name' and 'lora_int_id' needs to be provided.")
        if name not in self._paths:
            raise NotFound(f"The lora adapter '{name}' cannot be found.")
        del self._paths[name]
