"""compare: bootstrap deltas and verdicts on synthetic runs with known differences."""

from __future__ import annotations

import numpy as np
import pytest

from reasonperf.analysis.compare import NO_DIFF, compare_runs, compare_table, overall, verdict
from tests.test_analysis_data import make_run, request


def _run(name: str, speed: float = 1.0, correct_share: float = 0.5, problems: int = 40,
         samples: int = 3, seed: int = 0):
    """``speed`` divides every latency; problem p is answered correctly (every sample)
    when p < correct_share x problems, so accuracy is identical across runs by design."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(problems * samples):
        p = i // samples
        e2e = float(rng.lognormal(np.log(2.0), 0.3)) / speed
        rows.append(request(
            i, sent=0.1 * i, e2e=e2e, ttft=e2e / 10, ttfvt=e2e / 2, problem_id=f"p{p}",
            sample_index=i % samples, completion_tokens=int(rng.integers(80, 120)),
            correct=p < correct_share * problems))
    return make_run(rows, name=name)


def _metrics(result, index: int = 0):
    return {r["metric"]: r for r in result.numbers["comparisons"][index]["metrics"]}


def test_faster_run_with_identical_accuracy():
    result = compare_runs([_run("base"), _run("fast", speed=2.0, seed=1)])
    m = _metrics(result)
    for key in ("ttft_p50", "ttfvt_p50", "e2e_p50", "e2e_mean", "tpot_p50", "tpot_mean"):
        assert m[key]["verdict"] == "faster", key
        assert m[key]["ci_high"] < 0
        assert m[key]["ci_low"] <= m[key]["delta"] <= m[key]["ci_high"]
    assert m["e2e_p50"]["delta_pct"] == pytest.approx(-50, abs=10)
    assert m["accuracy"]["delta"] == 0.0
    assert m["accuracy"]["verdict"] == NO_DIFF
    comp = result.numbers["comparisons"][0]
    assert comp["accuracy_paired"] is True
    assert comp["overall"] == "faster, same accuracy"
    assert result.findings[0] == "fast vs base: faster, same accuracy."


def test_two_runs_of_one_configuration_show_no_difference():
    result = compare_runs([_run("a", seed=3), _run("b", seed=4)])
    m = _metrics(result)
    assert m["e2e_p50"]["verdict"] == NO_DIFF
    assert m["accuracy"]["verdict"] == NO_DIFF
    assert result.numbers["comparisons"][0]["overall"] == "same speed, same accuracy"


def test_less_accurate_run():
    result = compare_runs([_run("base", correct_share=0.8), _run("worse", correct_share=0.3)])
    m = _metrics(result)
    assert m["accuracy"]["delta"] == pytest.approx(-0.5)
    assert m["accuracy"]["verdict"] == "less accurate"
    assert result.numbers["comparisons"][0]["overall"].endswith("less accurate")


def test_different_problem_sets_are_compared_unpaired():
    result = compare_runs([_run("base", problems=40), _run("other", problems=30)])
    assert result.numbers["comparisons"][0]["accuracy_paired"] is False
    assert _metrics(result)["accuracy"]["ci_low"] is not None
    assert any("unpaired" in f for f in result.findings)


def test_comparison_is_reproducible_and_covers_several_runs():
    runs = [_run("base"), _run("fast", speed=2.0, seed=1), _run("slow", speed=0.5, seed=2)]
    a, b = compare_runs(runs), compare_runs(runs)
    assert a.numbers == b.numbers
    assert [c["run"] for c in a.numbers["comparisons"]] == ["fast", "slow"]
    assert _metrics(a, 1)["e2e_p50"]["verdict"] == "slower"
    fig = a.figures[0]
    assert [s.name for s in fig.series] == ["fast", "slow"]
    assert len(fig.series[0].x) == len(fig.series[0].extra["ci_low"]) == 10


def test_compare_table_rows():
    result = compare_runs([_run("base"), _run("fast", speed=2.0, seed=1)])
    table = compare_table(result)
    assert table.columns == ["metric", "baseline (base)", "fast", "delta", "95% CI", "verdict"]
    rows = {r[0]: r for r in table.rows}
    assert rows["E2E p50"][5] == "faster"
    assert rows["accuracy avg@n"][1] == "50.0 %"
    assert rows["accuracy avg@n"][5] == NO_DIFF
    assert rows["overall"][5] == "faster, same accuracy"
    assert "%" in rows["E2E p50"][3]


def test_compare_needs_two_runs():
    result = compare_runs([_run("base")])
    assert result.skipped
    assert compare_table(result).rows == []


def test_verdict_and_overall_words():
    assert verdict("latency", -2.0, -1.0) == "faster"
    assert verdict("throughput", -2.0, -1.0) == "slower"
    assert verdict("accuracy", 0.01, 0.2) == "more accurate"
    assert verdict("latency", -1.0, 1.0) == NO_DIFF
    assert verdict("latency", None, None) == "n/a"
    rows = [{"kind": "latency", "label": "TTFT p50", "verdict": "faster"},
            {"kind": "latency", "label": "E2E p50", "verdict": "slower"},
            {"kind": "accuracy", "label": "accuracy", "verdict": "n/a"}]
    assert overall(rows) == ("mixed speed (faster: TTFT p50; slower: E2E p50), "
                             "accuracy not compared")
