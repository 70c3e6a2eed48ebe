"""Drop-in compatibility with the upstream simulator's command line: its flags (``flags``), the
settings sources composed in upstream's precedence (``settings``), the ``llm-d-inference-sim``
entry point (``entry``) and the converter of flat config files into scenarios (``migrate``)."""
