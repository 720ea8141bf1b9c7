"""Sampling statistics against values computed by hand on small fixtures."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest

from reasonperf.grading import stats


def _row(
    pid,
    idx,
    correct,
    answer,
    *,
    truncated=False,
    difficulty="1",
    domain="math",
    dataset="d",
    completion_tokens=10,
    reasoning_tokens=None,
):
    return {
        "dataset": dataset,
        "problem_id": pid,
        "sample_index": idx,
        "correct": correct,
        "extracted_answer": answer,
        "truncated": truncated,
        "difficulty": difficulty,
        "domain": domain,
        "completion_tokens": completion_tokens,
        "reasoning_tokens": reasoning_tokens,
    }


@pytest.fixture
def rows() -> list[dict]:
    """p1: 2/4 correct, p2: 0/4 (c = 0), p3: 4/4. Rows deliberately out of order."""
    return [
        _row("p1", 3, False, None, truncated=True),
        _row("p1", 0, True, "12"),
        _row("p1", 1, True, "12.0"),
        _row("p1", 2, False, "7"),
        _row("p2", 1, False, "3", difficulty="5"),
        _row("p2", 0, False, "4", difficulty="5"),  # tie 2-2: "4" is given first (index 0)
        _row("p2", 2, False, "3", difficulty="5"),
        _row("p2", 3, False, "4", difficulty="5", truncated=True),
        _row("p3", 0, True, r"\frac{1}{2}"),
        _row("p3", 1, True, "0.5"),
        _row("p3", 2, True, "1/2"),
        _row("p3", 3, True, "x"),
    ]


def test_pass_at_k_estimator_by_hand():
    assert stats.pass_at_k_estimate(4, 2, 1) == pytest.approx(0.5)
    assert stats.pass_at_k_estimate(4, 2, 2) == pytest.approx(1 - 1 / 6)
    assert stats.pass_at_k_estimate(5, 1, 3) == pytest.approx(1 - 4 / 10)
    assert stats.pass_at_k_estimate(5, 0, 3) == 0.0  # c = 0
    assert stats.pass_at_k_estimate(4, 0, 4) == 0.0  # n = k, c = 0
    assert stats.pass_at_k_estimate(4, 1, 4) == 1.0  # n = k, c > 0
    with pytest.raises(ValueError):
        stats.pass_at_k_estimate(3, 1, 4)


def test_avg_at_n_and_standard_error(rows):
    got = stats.avg_at_n(rows)
    # per-problem means 0.5, 0, 1 -> 0.5; sample std 0.5 -> SE 0.5 / sqrt(3)
    assert got["avg"] == pytest.approx(0.5)
    assert got["se"] == pytest.approx(0.5 / math.sqrt(3))
    assert (got["n_problems"], got["n_samples"], got["n_min"], got["n_max"]) == (3, 12, 4, 4)


def test_avg_weights_problems_not_samples():
    rows = [_row("a", i, True, "1") for i in range(3)] + [_row("b", 0, False, "2")]
    got = stats.avg_at_n(rows)
    assert got["avg"] == pytest.approx(0.5)  # not 3/4
    assert stats.avg_at_n([_row("a", 0, True, "1")])["se"] is None


def test_pass_at_k(rows):
    assert stats.pass_at_k(rows, 1)["value"] == pytest.approx(0.5)
    assert stats.pass_at_k(rows, 2)["value"] == pytest.approx((5 / 6 + 0 + 1) / 3)
    assert stats.pass_at_k(rows, 4)["value"] == pytest.approx(2 / 3)  # n = k
    too_big = stats.pass_at_k(rows, 5)
    assert too_big["value"] is None and too_big["n_skipped"] == 3


def test_cons_at_n_majority_and_ties(rows):
    # p1: "12" x2 (normalised "12.0" == "12") wins, correct; p2: tie, first given "4",
    # wrong; p3: 1/2 x3 wins, correct
    assert stats.cons_at_n(rows)["value"] == pytest.approx(2 / 3)
    p2 = sorted((r for r in rows if r["problem_id"] == "p2"), key=lambda r: r["sample_index"])
    assert stats.majority_answer(p2) == ("4", False)


def test_cons_at_n_tie_goes_to_first_sample():
    rows = [
        _row("q", 0, False, "5"),
        _row("q", 1, True, "6"),
        _row("q", 2, True, "6"),
        _row("q", 3, False, "5"),
    ]
    assert stats.cons_at_n(rows)["value"] == 0.0
    rows[0]["sample_index"], rows[1]["sample_index"] = 1, 0
    assert stats.cons_at_n(rows)["value"] == 1.0
    assert stats.cons_at_n([_row("z", 0, False, None)])["value"] == 0.0  # no votes: wrong


def test_rates(rows):
    assert stats.truncation_rate(rows) == pytest.approx(2 / 12)
    assert stats.extraction_failure_rate(rows) == pytest.approx(1 / 12)
    ungraded = [_row("u", 0, None, None)]
    assert stats.extraction_failure_rate(ungraded) is None


def test_summarize_groups_and_arrow_input(rows):
    summary = stats.summarize(rows)
    assert summary["overall"]["avg_at_n"] == pytest.approx(0.5)
    assert summary["overall"]["pass_at_k"] == {"1": pytest.approx(0.5), "4": pytest.approx(2 / 3)}
    assert set(summary["by_difficulty"]) == {"1", "5"}
    assert summary["by_difficulty"]["5"]["avg_at_n"] == 0.0
    assert summary["by_difficulty"]["1"]["avg_at_n"] == pytest.approx(0.75)
    assert summary["by_difficulty"]["1"]["cons_at_n"] == 1.0
    assert list(summary["by_dataset"]) == ["d"]
    json.dumps(summary)  # plain, JSON-serialisable
    assert stats.summarize(pa.Table.from_pylist(rows)) == summary


def test_missing_group_value_is_unknown():
    summary = stats.summarize([_row("a", 0, True, "1", domain=None)], ks=[1])
    assert list(summary["by_domain"]) == ["unknown"]
    assert summary["by_domain"]["unknown"]["pass_at_k"] == {"1": 1.0}


def test_joined_helpers():
    rows = [
        _row("a", 0, True, "1", completion_tokens=100, reasoning_tokens=100),
        _row("a", 1, False, "2", completion_tokens=300, reasoning_tokens=300, truncated=True),
        _row("b", 0, True, "1", completion_tokens=200, reasoning_tokens=200),
        _row("b", 1, False, None, completion_tokens=400, reasoning_tokens=400, truncated=True),
        _row("c", 0, None, None, completion_tokens=999),  # ungraded: ignored
    ]
    assert stats.tokens_per_correct(rows) == pytest.approx(1000 / 2)
    assert stats.tokens_per_correct([_row("a", 0, False, "1")]) is None
    by_trunc = stats.accuracy_by_truncation(rows)
    assert by_trunc == {
        "truncated": {"n": 2, "accuracy": 0.0},
        "finished": {"n": 2, "accuracy": 1.0},
    }
    dist = stats.reasoning_tokens_by_correctness(rows)
    assert dist["correct"] == {"n": 2, "mean": 150.0, "p50": 150.0, "p90": pytest.approx(190.0)}
    assert dist["wrong"]["mean"] == 350.0
    four = [_row("x", i, True, "1", reasoning_tokens=v) for i, v in enumerate([100, 200, 300, 400])]
    assert stats.reasoning_tokens_by_correctness(four)["correct"]["p90"] == pytest.approx(370.0)
    assert stats.reasoning_tokens_by_correctness(four)["wrong"] == {
        "n": 0,
        "mean": None,
        "p50": None,
        "p90": None,
    }
