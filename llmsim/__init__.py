"""llmsim: a declarative, scenario-driven simulator of a vLLM inference server."""

__version__ = "0.1.0"
