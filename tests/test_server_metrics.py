"""server_summary on constructed timelines with known answers."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pytest

from reasonperf.metrics.server import counter_increase, server_summary
from reasonperf.records import TIMELINE_SCHEMA
from reasonperf.telemetry import names

E, G = names.SOURCE_ENGINE, names.SOURCE_GPU


def _timeline(series: dict[tuple[str, str], list[float]], shuffle: bool = True) -> pa.Table:
    rows = [
        {"t_s": float(i), "source": source, "metric": metric, "value": float(v)}
        for (source, metric), values in series.items()
        for i, v in enumerate(values)
    ]
    if shuffle:  # the summary must sort by time itself
        random.Random(7).shuffle(rows)
    return pa.Table.from_pylist(rows, schema=TIMELINE_SCHEMA)


FULL = {
    (E, names.KV_CACHE_USAGE): [0.0, 0.5, 0.95, 1.0, 0.5],
    (E, names.REQUESTS_RUNNING): [0, 4, 8, 8, 2],
    (E, names.REQUESTS_WAITING): [0, 0, 3, 5, 0],
    (E, names.PREEMPTIONS_TOTAL): [2, 2, 3, 6, 6],
    (E, names.PREFIX_CACHE_HITS_TOTAL): [0, 10, 30, 30, 30],
    (E, names.PREFIX_CACHE_QUERIES_TOTAL): [0, 100, 200, 200, 200],
    (E, names.GENERATION_TOKENS_TOTAL): [1000, 1100, 1250, 1400, 1500],
    (E, names.PROMPT_TOKENS_TOTAL): [50, 150, 250, 250, 250],
    (E, names.SPEC_DECODE_ACCEPTED_TOKENS_TOTAL): [0, 30, 60, 90, 120],
    (E, names.SPEC_DECODE_DRAFT_TOKENS_TOTAL): [0, 40, 80, 120, 160],
    (G, names.GPU_MEMORY_USED_BYTES): [1e9, 3e9, 5e9, 5e9, 1e9],
    (G, names.GPU_MEMORY_TOTAL_BYTES): [8e9] * 5,
    (G, names.GPU_UTILIZATION): [0.0, 0.5, 1.0, 1.0, 0.5],
}


def test_summary_known_answers() -> None:
    out = server_summary(_timeline(FULL), client_completion_tokens=480)
    assert out["engine_samples"] == 5
    assert out["engine_window_s"] == 4.0
    # kv: [0, .5, .95, 1, .5]; sorted [0, .5, .5, .95, 1]; p95 at rank 3.8 -> .95 + .8 * .05
    assert out["kv_cache_usage_mean"] == pytest.approx(0.59)
    assert out["kv_cache_usage_p95"] == pytest.approx(0.99)
    assert out["kv_cache_usage_max"] == 1.0
    # squared deviations from .59: .3481 + .0081 + .1296 + .1681 + .0081 = .662, / 5
    assert out["kv_cache_usage_std"] == pytest.approx(0.1324**0.5)
    assert out["kv_cache_usage_mean_abs_change"] == pytest.approx((0.5 + 0.45 + 0.05 + 0.5) / 4)
    assert out["kv_cache_usage_frac_high"] == pytest.approx(0.4)  # .95 and 1.0 are above .9
    assert out["kv_cache_high_threshold"] == 0.9
    assert out["requests_running_max"] == 8
    assert out["requests_waiting_max"] == 5
    assert out["preemptions"] == 4
    assert out["prefix_cache_hit_rate"] == pytest.approx(30 / 200)
    assert out["engine_prompt_tokens"] == 200
    assert out["engine_generation_tokens"] == 500
    assert out["client_completion_tokens"] == 480
    assert out["generation_tokens_diff"] == 20
    assert out["generation_tokens_diff_frac"] == pytest.approx(20 / 480)
    assert out["spec_decode_acceptance_rate"] == pytest.approx(0.75)
    assert out["gpu_memory_used_bytes_max"] == 5e9
    assert out["gpu_memory_used_bytes_mean"] == pytest.approx(3e9)
    assert out["gpu_memory_total_bytes"] == 8e9
    assert out["gpu_utilization_mean"] == pytest.approx(0.6)
    json.dumps(out, allow_nan=False)


def test_summary_without_samples_has_the_same_keys_all_none() -> None:
    full = server_summary(_timeline(FULL), client_completion_tokens=480)
    for timeline in (None, TIMELINE_SCHEMA.empty_table()):
        empty = server_summary(timeline, client_completion_tokens=480)
        assert empty.keys() == full.keys()
        assert empty["engine_samples"] == 0
        assert empty["client_completion_tokens"] == 480
        fixed = {"engine_samples", "client_completion_tokens", "kv_cache_high_threshold"}
        assert all(v is None for k, v in empty.items() if k not in fixed)
        json.dumps(empty, allow_nan=False)


def test_summary_partial_metrics_and_single_sample() -> None:
    timeline = _timeline(
        {
            (E, names.KV_CACHE_USAGE): [0.3],
            (E, names.GENERATION_TOKENS_TOTAL): [10],
            (E, names.PREFIX_CACHE_HITS_TOTAL): [0, 0],
            (E, names.PREFIX_CACHE_QUERIES_TOTAL): [5, 5],  # no queries during the run
        }
    )
    out = server_summary(timeline, client_completion_tokens=None)
    assert out["kv_cache_usage_mean"] == 0.3 and out["kv_cache_usage_std"] == 0.0
    assert out["kv_cache_usage_mean_abs_change"] is None  # needs two samples
    assert out["engine_generation_tokens"] is None  # one counter reading is no increase
    assert out["generation_tokens_diff"] is None
    assert out["prefix_cache_hit_rate"] is None
    assert out["spec_decode_acceptance_rate"] is None
    assert out["gpu_utilization_mean"] is None
    assert out["engine_samples"] == 2


def test_counter_increase_counts_through_resets() -> None:
    assert counter_increase(np.array([100.0, 150.0, 20.0, 50.0])) == 50 + 20 + 30
    assert counter_increase(np.array([5.0, 5.0])) == 0
    assert counter_increase(np.array([5.0])) is None
