"""difficulty: per-level E2E, reasoning tokens and accuracy, with a fitted trend."""

from __future__ import annotations

import pytest

from reasonperf.analysis.difficulty import analyze_difficulty
from reasonperf.grading.stats import avg_at_n
from tests.test_analysis_data import make_run, request


def _rows():
    rows = []
    i = 0
    # level L: E2E = 2 L s, reasoning tokens = 100 L; accuracy 1.0, 0.5, 0.0 for 1, 2, 10
    for level, correct in (("1", [True, True]), ("2", [True, False]), ("10", [False, False])):
        for c in correct:
            x = float(level)
            rows.append(request(i, e2e=2 * x, reasoning_tokens=int(100 * x), difficulty=level,
                                correct=c))
            i += 1
    return rows


def test_levels_sorted_numerically_with_known_values():
    result = analyze_difficulty(make_run(_rows()))
    n = result.numbers
    assert n["levels"] == ["1", "2", "10"]
    assert n["level_source"] == "difficulty"
    by = {g["level"]: g for g in n["by_level"]}
    assert by["10"]["e2e_mean"] == pytest.approx(20.0)
    assert by["2"]["reasoning_tokens_mean"] == pytest.approx(200.0)
    assert [by[k]["accuracy"] for k in ("1", "2", "10")] == [1.0, 0.5, 0.0]
    assert by["1"]["requests"] == 2


def test_trend_is_fitted_across_levels():
    trend = analyze_difficulty(make_run(_rows())).numbers["trend"]
    assert trend["e2e_mean"]["slope"] == pytest.approx(2.0)
    assert trend["e2e_mean"]["r"] == pytest.approx(1.0)
    assert trend["reasoning_tokens_mean"]["slope"] == pytest.approx(100.0)
    assert trend["accuracy"]["slope"] < 0


def test_no_trend_with_two_levels():
    rows = [r for r in _rows() if r["difficulty"] != "10"]
    assert analyze_difficulty(make_run(rows)).numbers["trend"] == {}


def test_dataset_is_the_difficulty_when_rows_have_no_level():
    rows = [request(0, dataset="gsm8k", e2e=1.0, correct=True),
            request(1, dataset="aime24", e2e=9.0, correct=False, problem_id="a1"),
            request(2, dataset="math500", difficulty="3", e2e=4.0, correct=True)]
    result = analyze_difficulty(make_run(rows))
    assert result.numbers["levels"] == ["3", "aime24", "gsm8k"]
    by = {g["level"]: g for g in result.numbers["by_level"]}
    assert by["aime24"]["e2e_mean"] == pytest.approx(9.0)
    assert result.numbers["trend"] == {}
    assert {f.id for f in result.figures} == {"difficulty-e2e", "difficulty-reasoning",
                                              "difficulty-accuracy"}


def test_accuracy_matches_grading_stats_with_samples():
    # two samples per problem, two problems at level 1: avg@n is per problem, then over
    rows = [request(i, problem_id=f"p{i // 2}", sample_index=i % 2, difficulty="1",
                    correct=c) for i, c in enumerate([True, True, True, False])]
    by = analyze_difficulty(make_run(rows)).numbers["by_level"][0]
    assert by["accuracy"] == pytest.approx(avg_at_n(rows)["avg"]) == pytest.approx(0.75)
    assert by["problems"] == 2


def test_named_levels_are_described_by_their_extremes():
    rows = [request(0, dataset="gsm8k", e2e=1.0), request(1, dataset="aime24", e2e=9.0),
            request(2, dataset="math500", difficulty="3", e2e=4.0)]
    findings = analyze_difficulty(make_run(rows)).findings
    assert findings[0] == ("Mean E2E is longest for aime24 (9.00 s) and shortest for "
                           "gsm8k (1.00 s).")
