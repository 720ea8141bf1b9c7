"""The unified telemetry vocabulary and how each engine's Prometheus names map onto it.

One constants module shared by collection (prometheus.py, gpu.py), storage (the
``metric`` column of timeline.parquet) and analysis (metrics/server.py), so a name means
one thing everywhere.

Engine names are written without the ``_total`` suffix: prometheus_client exposes a
counter ``x`` as the sample ``x_total`` (and the text parser names the family ``x``),
while hand-written or older exporters may expose ``x`` or ``x_total`` under any type.
The parser strips one trailing ``_total`` from every sample name before looking it up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# --- engine (source="engine") ---------------------------------------------------------
KV_CACHE_USAGE = "kv_cache_usage"  # fraction 0..1 of the KV cache in use
REQUESTS_RUNNING = "requests_running"
REQUESTS_WAITING = "requests_waiting"
PREEMPTIONS_TOTAL = "preemptions_total"  # vLLM preemptions, SGLang retractions
PREFIX_CACHE_HITS_TOTAL = "prefix_cache_hits_total"  # tokens served from the prefix cache
PREFIX_CACHE_QUERIES_TOTAL = "prefix_cache_queries_total"  # tokens looked up
GENERATION_TOKENS_TOTAL = "generation_tokens_total"
PROMPT_TOKENS_TOTAL = "prompt_tokens_total"
SPEC_DECODE_ACCEPTED_TOKENS_TOTAL = "spec_decode_accepted_tokens_total"
SPEC_DECODE_DRAFT_TOKENS_TOTAL = "spec_decode_draft_tokens_total"
# the _sum / _count of the engine's own latency histograms (counters, read as deltas): the
# engine's mean TTFT and E2E over a run, for the summary's truth section
TTFT_SECONDS_SUM = "ttft_seconds_sum"
TTFT_SECONDS_COUNT = "ttft_seconds_count"
E2E_SECONDS_SUM = "e2e_seconds_sum"
E2E_SECONDS_COUNT = "e2e_seconds_count"

# --- GPU through NVML (source="gpu"), summed / averaged over the watched devices -------
GPU_MEMORY_USED_BYTES = "gpu_memory_used_bytes"
GPU_MEMORY_TOTAL_BYTES = "gpu_memory_total_bytes"
GPU_UTILIZATION = "gpu_utilization"  # fraction 0..1 (NVML reports percent)

SOURCE_ENGINE = "engine"
SOURCE_GPU = "gpu"

COUNTERS = frozenset(
    {
        PREEMPTIONS_TOTAL,
        PREFIX_CACHE_HITS_TOTAL,
        PREFIX_CACHE_QUERIES_TOTAL,
        GENERATION_TOKENS_TOTAL,
        PROMPT_TOKENS_TOTAL,
        SPEC_DECODE_ACCEPTED_TOKENS_TOTAL,
        SPEC_DECODE_DRAFT_TOKENS_TOTAL,
        TTFT_SECONDS_SUM,
        TTFT_SECONDS_COUNT,
        E2E_SECONDS_SUM,
        E2E_SECONDS_COUNT,
    }
)

Aggregation = Literal["sum", "mean"]


@dataclass(frozen=True, slots=True)
class EngineMetric:
    """One unified metric and the engine names it is read from.

    ``sources`` are tried in order and only the first one present in a scrape is used,
    so an exporter that shows both a new and a deprecated name is not counted twice.
    ``aggregation`` folds the label sets of that name (per model_name, per engine index
    under data parallelism): counts are summed, fractions averaged.
    """

    unified: str
    aggregation: Aggregation
    sources: tuple[str, ...]


# vLLM 0.32 (vllm/v1/metrics/loggers.py, vllm/v1/spec_decode/metrics.py); older names
# after the current one.
VLLM_METRICS: tuple[EngineMetric, ...] = (
    # a 0..1 fraction despite "perc"; vllm < 0.10 called it gpu_cache_usage_perc
    EngineMetric(KV_CACHE_USAGE, "mean", ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")),
    EngineMetric(REQUESTS_RUNNING, "sum", ("vllm:num_requests_running",)),
    EngineMetric(REQUESTS_WAITING, "sum", ("vllm:num_requests_waiting",)),
    EngineMetric(PREEMPTIONS_TOTAL, "sum", ("vllm:num_preemptions",)),
    EngineMetric(
        PREFIX_CACHE_HITS_TOTAL, "sum", ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits")
    ),
    EngineMetric(
        PREFIX_CACHE_QUERIES_TOTAL,
        "sum",
        ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries"),
    ),
    EngineMetric(GENERATION_TOKENS_TOTAL, "sum", ("vllm:generation_tokens",)),
    EngineMetric(PROMPT_TOKENS_TOTAL, "sum", ("vllm:prompt_tokens",)),
    EngineMetric(
        SPEC_DECODE_ACCEPTED_TOKENS_TOTAL, "sum", ("vllm:spec_decode_num_accepted_tokens",)
    ),
    EngineMetric(SPEC_DECODE_DRAFT_TOKENS_TOTAL, "sum", ("vllm:spec_decode_num_draft_tokens",)),
    # histograms: arrival in the engine's frontend to first token / to the end
    EngineMetric(TTFT_SECONDS_SUM, "sum", ("vllm:time_to_first_token_seconds_sum",)),
    EngineMetric(TTFT_SECONDS_COUNT, "sum", ("vllm:time_to_first_token_seconds_count",)),
    EngineMetric(E2E_SECONDS_SUM, "sum", ("vllm:e2e_request_latency_seconds_sum",)),
    EngineMetric(E2E_SECONDS_COUNT, "sum", ("vllm:e2e_request_latency_seconds_count",)),
)

# SGLang (python/sglang/srt/metrics/collector.py). It has no prefix-cache query counter:
# its cached_tokens / prompt_tokens pair is the same token-weighted ratio vLLM's
# hits / queries gives, so prompt_tokens feeds both unified names. Its spec_accept_rate
# gauge is left out: it reads 0 when speculative decoding is off.
SGLANG_METRICS: tuple[EngineMetric, ...] = (
    EngineMetric(KV_CACHE_USAGE, "mean", ("sglang:token_usage",)),
    EngineMetric(REQUESTS_RUNNING, "sum", ("sglang:num_running_reqs",)),
    EngineMetric(REQUESTS_WAITING, "sum", ("sglang:num_queue_reqs",)),
    EngineMetric(PREEMPTIONS_TOTAL, "sum", ("sglang:num_retracted_requests",)),
    EngineMetric(PREFIX_CACHE_HITS_TOTAL, "sum", ("sglang:cached_tokens",)),
    EngineMetric(PREFIX_CACHE_QUERIES_TOTAL, "sum", ("sglang:prompt_tokens",)),
    EngineMetric(GENERATION_TOKENS_TOTAL, "sum", ("sglang:generation_tokens",)),
    EngineMetric(PROMPT_TOKENS_TOTAL, "sum", ("sglang:prompt_tokens",)),
    EngineMetric(TTFT_SECONDS_SUM, "sum", ("sglang:time_to_first_token_seconds_sum",)),
    EngineMetric(TTFT_SECONDS_COUNT, "sum", ("sglang:time_to_first_token_seconds_count",)),
    EngineMetric(E2E_SECONDS_SUM, "sum", ("sglang:e2e_request_latency_seconds_sum",)),
    EngineMetric(E2E_SECONDS_COUNT, "sum", ("sglang:e2e_request_latency_seconds_count",)),
)

ENGINE_METRICS: tuple[EngineMetric, ...] = VLLM_METRICS + SGLANG_METRICS

KNOWN_ENGINE_NAMES: frozenset[str] = frozenset(
    name for metric in ENGINE_METRICS for name in metric.sources
)


def normalize_sample_name(name: str) -> str:
    """Strip one trailing ``_total`` so counters match with or without the suffix."""
    return name.removesuffix("_total")
