"""reasonperf: benchmark served reasoning LLMs (accuracy, service end, user end)."""

__version__ = "0.1.0"
