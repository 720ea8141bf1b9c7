"""The summary's server section, from the long-format timeline (t_s, source, metric, value).

Statistics over gauges are per sample: the sampler takes samples at evenly spaced
absolute ticks, so the fraction of samples above a level is the fraction of time. The
standard deviation is the population one (ddof=0): it describes the observed series.
Counters are read as increases over the run (Prometheus ``increase`` semantics: a drop
is a counter reset and the value after it counts as new), never as absolute values,
because the engine counted warm-up and earlier runs too.

Every key is always present and None when its metric was never sampled, so runs compare
column by column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reasonperf.records import TIMELINE_SCHEMA
from reasonperf.telemetry import names

KV_HIGH_USAGE = 0.9  # "the KV cache is nearly full" for kv_cache_usage_frac_high


def _series(timeline: pa.Table, source: str, metric: str) -> np.ndarray:
    """The finite values of one metric, in time order."""
    mask = pc.and_(pc.equal(timeline["source"], source), pc.equal(timeline["metric"], metric))
    rows = timeline.filter(mask).sort_by("t_s")
    values = rows["value"].to_numpy(zero_copy_only=False).astype(np.float64)
    return values[np.isfinite(values)]


def engine_series(timeline: pa.Table, metric: str) -> np.ndarray:
    """The finite values of one engine metric, in time order."""
    return _series(timeline, names.SOURCE_ENGINE, metric)


def counter_increase(values: np.ndarray) -> float | None:
    """Increase of a counter over the samples, counting through resets; None if < 2."""
    if len(values) < 2:
        return None
    steps = np.diff(values)
    after_reset = values[1:][steps < 0]  # a reset restarts from 0, so the new value is the step
    return float(steps[steps >= 0].sum() + after_reset.sum())


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def _kv_stats(kv: np.ndarray) -> dict[str, float | None]:
    if len(kv) == 0:
        return {
            "kv_cache_usage_mean": None,
            "kv_cache_usage_p95": None,
            "kv_cache_usage_max": None,
            "kv_cache_usage_std": None,
            "kv_cache_usage_mean_abs_change": None,
            "kv_cache_usage_frac_high": None,
        }
    return {
        "kv_cache_usage_mean": float(kv.mean()),
        "kv_cache_usage_p95": float(np.percentile(kv, 95)),
        "kv_cache_usage_max": float(kv.max()),
        "kv_cache_usage_std": float(kv.std()),
        "kv_cache_usage_mean_abs_change": (
            float(np.abs(np.diff(kv)).mean()) if len(kv) > 1 else None
        ),
        "kv_cache_usage_frac_high": float((kv > KV_HIGH_USAGE).mean()),
    }


def _max(values: np.ndarray) -> float | None:
    return float(values.max()) if len(values) else None


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def server_summary(
    timeline: pa.Table | None, client_completion_tokens: int | None
) -> dict[str, Any]:
    """Server-side numbers of one run; JSON-serialisable, every key always present.

    ``client_completion_tokens``: the sum of completion_tokens the client counted, to
    check against the engine's own generation counter (docs/metrics.md, the truth section).
    """
    if timeline is None or timeline.num_rows == 0:
        timeline = TIMELINE_SCHEMA.empty_table()

    def engine(metric: str) -> np.ndarray:
        return _series(timeline, names.SOURCE_ENGINE, metric)

    def gpu(metric: str) -> np.ndarray:
        return _series(timeline, names.SOURCE_GPU, metric)

    engine_rows = timeline.filter(pc.equal(timeline["source"], names.SOURCE_ENGINE))
    engine_times = pc.unique(engine_rows["t_s"])
    hits = counter_increase(engine(names.PREFIX_CACHE_HITS_TOTAL))
    queries = counter_increase(engine(names.PREFIX_CACHE_QUERIES_TOTAL))
    accepted = counter_increase(engine(names.SPEC_DECODE_ACCEPTED_TOKENS_TOTAL))
    drafted = counter_increase(engine(names.SPEC_DECODE_DRAFT_TOKENS_TOTAL))
    engine_tokens = counter_increase(engine(names.GENERATION_TOKENS_TOTAL))
    preemptions = counter_increase(engine(names.PREEMPTIONS_TOTAL))
    token_diff = (
        engine_tokens - client_completion_tokens
        if engine_tokens is not None and client_completion_tokens is not None
        else None
    )

    return {
        "engine_samples": len(engine_times),
        "engine_window_s": (
            float(pc.max(engine_times).as_py() - pc.min(engine_times).as_py())
            if len(engine_times)
            else None
        ),
        **_kv_stats(engine(names.KV_CACHE_USAGE)),
        "kv_cache_high_threshold": KV_HIGH_USAGE,
        "requests_running_max": _max(engine(names.REQUESTS_RUNNING)),
        "requests_waiting_max": _max(engine(names.REQUESTS_WAITING)),
        "preemptions": preemptions,
        "prefix_cache_hit_rate": _ratio(hits, queries),
        "engine_prompt_tokens": counter_increase(engine(names.PROMPT_TOKENS_TOTAL)),
        "engine_generation_tokens": engine_tokens,
        "client_completion_tokens": client_completion_tokens,
        "generation_tokens_diff": token_diff,
        "generation_tokens_diff_frac": _ratio(token_diff, client_completion_tokens),
        "spec_decode_acceptance_rate": _ratio(accepted, drafted),
        "gpu_memory_used_bytes_max": _max(gpu(names.GPU_MEMORY_USED_BYTES)),
        "gpu_memory_used_bytes_mean": _mean(gpu(names.GPU_MEMORY_USED_BYTES)),
        "gpu_memory_total_bytes": _max(gpu(names.GPU_MEMORY_TOTAL_BYTES)),
        "gpu_utilization_mean": _mean(gpu(names.GPU_UTILIZATION)),
    }
