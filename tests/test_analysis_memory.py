"""memory: KV usage statistics and how they line up with the queue, on a known timeline."""

from __future__ import annotations

import pytest

from reasonperf.analysis.memory import analyze_memory
from tests.test_analysis_data import make_run, request, timeline_table

T = [0.0, 1.0, 2.0, 3.0, 4.0]
KV = [0.2, 0.5, 0.95, 0.95, 0.4]


def _run(**extra):
    series = {
        "kv_cache_usage": (T, KV),
        "requests_running": (T, [2.0, 5.0, 9.5, 9.5, 4.0]),  # 10 x KV: r = 1
        "requests_waiting": (T, [0.0, 0.0, 2.0, 1.0, 0.0]),
        "preemptions_total": (T, [7.0, 7.0, 8.0, 10.0, 10.0]),  # counter: +3 over the run
        **extra,
    }
    return make_run([request(0)], timeline=timeline_table(series))


def test_memory_numbers():
    result = analyze_memory(_run())
    n = result.numbers
    assert result.skipped is None
    assert n["samples"] == 5 and n["window_s"] == 4.0
    assert n["kv_mean"] == pytest.approx(0.6)
    assert n["kv_max"] == pytest.approx(0.95)
    assert n["kv_frac_time_high"] == pytest.approx(0.4)  # 2 of 5 samples above 0.9
    assert n["kv_mean_abs_change"] == pytest.approx((0.3 + 0.45 + 0.0 + 0.55) / 4)
    assert n["preemptions"] == pytest.approx(3.0)
    assert n["corr_kv_running"] == pytest.approx(1.0)
    assert n["kv_mean_while_waiting"] == pytest.approx(0.95)
    assert n["frac_time_waiting"] == pytest.approx(0.4)
    assert n["waiting_max"] == 2.0


def test_memory_figures_and_findings():
    result = analyze_memory(_run())
    ids = [f.id for f in result.figures]
    assert ids == ["memory-kv", "memory-queue"]
    kv = result.figures[0].series[0]
    assert kv.x == T and kv.y == KV
    queue = {s.name: s for s in result.figures[1].series}
    assert set(queue) == {"requests_running", "requests_waiting", "preemptions (cumulative)"}
    assert queue["preemptions (cumulative)"].y == [0.0, 0.0, 1.0, 3.0, 3.0]
    text = " ".join(result.findings)
    assert "preempted requests 3 times" in text
    assert "closely tracks" in text


def test_memory_aligns_unsynchronised_samples():
    # running is sampled 0.1 s after each KV sample: step alignment still pairs them
    late = [t + 0.1 for t in T]
    result = analyze_memory(_run(requests_running=(late, [2.0, 5.0, 9.5, 9.5, 4.0])))
    # KV at t pairs with running sampled at t - 0.9 (one tick earlier): not r = 1 any more
    assert result.numbers["corr_kv_running"] is not None
    assert result.numbers["corr_kv_running"] < 0.99


def test_memory_skipped_without_kv_samples():
    result = analyze_memory(make_run([request(0)]))
    assert result.skipped and "kv_cache_usage" in result.skipped
    assert result.numbers == {} and result.figures == []
