"""Entry point for ``python -m llmsim``."""

from llmsim.cli import main

main()
