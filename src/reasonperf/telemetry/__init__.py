"""Server-side telemetry: engine /metrics (vLLM, SGLang) and GPU memory, as timeline samples."""

from reasonperf.telemetry.gpu import NvmlGpu
from reasonperf.telemetry.prometheus import parse_metrics, scrape
from reasonperf.telemetry.sampler import TelemetrySampler

__all__ = ["NvmlGpu", "TelemetrySampler", "parse_metrics", "scrape"]
