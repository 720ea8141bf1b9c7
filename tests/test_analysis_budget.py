"""budget: one point per run against max_tokens, curves split by the other settings."""

from __future__ import annotations

import pytest

from reasonperf.analysis.budget import analyze_budget, curve_keys, saturation
from tests.test_analysis_data import make_run, request


def _run(max_tokens: int, n_correct: int, e2e: float, *, kv_dtype: str | None = None,
         seed: int = 0):
    rows = [request(i, e2e=e2e, correct=i < n_correct, completion_tokens=max_tokens // 2,
                    finish_reason="length" if i >= n_correct else "stop")
            for i in range(10)]
    spec = {"name": f"b{max_tokens}", "seed": seed, "sampling": {"max_tokens": max_tokens},
            "engine": {"kv_cache_dtype": kv_dtype}, "arrival": {"name": "batch"}}
    return make_run(rows, spec=spec, name=f"b{max_tokens}-{kv_dtype}")


def test_one_point_per_run_in_budget_order():
    runs = [_run(1024, 6, 8.0), _run(256, 2, 2.0, seed=1), _run(512, 5, 4.0)]
    result = analyze_budget(runs)
    assert result.skipped is None
    (curve,) = result.numbers["curves"].values()
    assert [p["max_tokens"] for p in curve] == [256, 512, 1024]
    assert [p["accuracy"] for p in curve] == pytest.approx([0.2, 0.5, 0.6])
    assert [p["truncation_rate"] for p in curve] == pytest.approx([0.8, 0.5, 0.4])
    assert [p["e2e_p50"] for p in curve] == pytest.approx([2.0, 4.0, 8.0])
    # 10 requests x max_tokens/2 tokens over a window of E2E seconds (all sent at 0)
    assert curve[0]["output_tps"] == pytest.approx(10 * 128 / 2.0)
    fig = {f.id: f for f in result.figures}["budget-accuracy"]
    assert fig.series[0].x == [256, 512, 1024]
    assert len(fig.series[0].extra["y_err"]) == 3
    assert len(result.tables[0].rows) == 3


def test_saturation_is_the_smallest_budget_within_one_se_of_the_best():
    pts = [{"max_tokens": 256, "accuracy": 0.2, "accuracy_se": 0.1},
           {"max_tokens": 512, "accuracy": 0.55, "accuracy_se": 0.1},
           {"max_tokens": 1024, "accuracy": 0.6, "accuracy_se": 0.1}]
    assert saturation(pts) == 512


def test_curves_split_by_differing_settings_only():
    runs = [_run(256, 2, 2.0), _run(512, 4, 3.0, seed=7),
            _run(256, 1, 1.5, kv_dtype="fp8"), _run(512, 3, 2.5, kv_dtype="fp8")]
    labels = curve_keys(runs)
    assert labels == ["engine.kv_cache_dtype=None"] * 2 + ["engine.kv_cache_dtype=fp8"] * 2
    result = analyze_budget(runs)
    assert len(result.numbers["curves"]) == 2
    assert all(len(pts) == 2 for pts in result.numbers["curves"].values())


def test_budget_skipped_with_one_max_tokens():
    assert analyze_budget([_run(256, 2, 2.0), _run(256, 3, 2.0, seed=2)]).skipped
    assert analyze_budget([_run(256, 2, 2.0)]).skipped


def test_runs_differing_in_more_than_max_tokens_give_single_point_curves():
    result = analyze_budget([_run(256, 2, 2.0), _run(512, 4, 3.0, kv_dtype="fp8")])
    assert result.skipped is None
    assert len(result.numbers["curves"]) == 2
    assert any("single point" in f for f in result.findings)
