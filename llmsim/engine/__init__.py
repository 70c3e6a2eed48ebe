"""The simulated engine: scheduling, timing, tokenization and response text. No HTTP here."""
