"""llmsim: a declarative, scenario-driven simulator of a vLLM inference server."""

TYPE_CHECKING = False  # not `from typing import ...`: `import llmsim` stays as cheap as it was
if TYPE_CHECKING:
    from llmsim.testing import serve

__version__ = "0.1.0"

__all__ = ["__version__", "serve"]


if not TYPE_CHECKING:  # type checkers see the import above, and no catch-all attribute

    def __getattr__(name: str) -> object:
        """``llmsim.serve``, imported on first use so that ``import llmsim`` stays cheap."""
        if name == "serve":
            from llmsim.testing import serve

            return serve
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
