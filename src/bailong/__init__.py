"""bailong: teach an English-centric LLM Traditional Chinese (the Bailong method, arXiv 2404.00862)."""

__version__ = "0.1.0"
