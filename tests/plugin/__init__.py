"""Tests of the llmsim pytest plugin (``llmsim_server``) and ``llmsim.serve``."""
