"""Calibration against real vLLM: read its request traces, fit the batched engine's step-time
and request-overhead coefficients to them, write a profile, and replay a trace against any
OpenAI-compatible server to compare its latencies with the recorded ones."""
