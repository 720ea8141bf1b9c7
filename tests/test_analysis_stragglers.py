"""stragglers: per-batch ratio and idle fraction, the open-loop tail, and who straggles."""

from __future__ import annotations

import numpy as np
import pytest

from reasonperf.analysis.stragglers import analyze_stragglers, batch_stats
from tests.test_analysis_data import make_run, request

BATCH = {"arrival": {"name": "batch", "batch_size": 4}}


def _batch_run():
    rows = [
        # batch 1 at t=0: three requests of 1 s and one of 4 s (4x the median)
        request(0, sent=0.0, e2e=1.0, reasoning_tokens=100, difficulty="1"),
        request(1, sent=0.0, e2e=1.0, reasoning_tokens=100, difficulty="1"),
        request(2, sent=0.0, e2e=1.0, reasoning_tokens=100, difficulty="2"),
        request(3, sent=0.0, e2e=4.0, reasoning_tokens=900, difficulty="5",
                finish_reason="length", truncated=True),
        # batch 2 at t=4: a mild straggler (1.25x the median)
        *(request(4 + i, sent=4.0, e2e=2.0, reasoning_tokens=200, difficulty="1")
          for i in range(3)),
        request(7, sent=4.0, e2e=2.5, reasoning_tokens=300, difficulty="5"),
    ]
    return make_run(rows, spec=BATCH)


def test_four_x_straggler_gives_ratio_four_and_idle_fraction():
    result = analyze_stragglers(_batch_run())
    b = result.numbers["batches"]
    assert result.numbers["mode"] == "batch"
    assert b["count"] == 2
    assert b["ratio_max"] == pytest.approx(4.0)
    assert b["ratio_median"] == pytest.approx((4.0 + 1.25) / 2)
    # batch 1: busy 1+1+1+4 = 7 of 4 slots x 4 s = 16 -> idle 9/16
    # batch 2: busy 2+2+2+2.5 = 8.5 of 4 x 2.5 = 10 -> idle 0.15
    assert b["idle_fraction_mean"] == pytest.approx((9 / 16 + 0.15) / 2)
    assert b["idle_fraction_overall"] == pytest.approx(1 - (7 + 8.5) / (16 + 10))
    table = result.tables[0]
    assert table.rows[0][6] == pytest.approx(4.0)  # worst batch first
    assert table.rows[0][7] == pytest.approx(9 / 16)


def test_batch_stats_counts_client_queue_as_idle():
    # scheduled together at 0, one request sent late at 1 s: its slot was idle meanwhile
    sched = np.zeros(2)
    sent = np.array([0.0, 1.0])
    done = np.array([2.0, 2.0])
    b = batch_stats(sched, sent, done)
    assert b["wall_s"].tolist() == [2.0]
    assert b["idle_fraction"][0] == pytest.approx(1 - 3.0 / 4.0)
    assert b["ratio"][0] == pytest.approx(2.0 / 1.5)


def test_batch_stragglers_are_the_slowest_of_each_batch():
    result = analyze_stragglers(_batch_run())
    n = result.numbers
    assert n["straggler_request_ids"] == ["req-3", "req-7"]  # slowest first
    assert n["stragglers"]["n"] == 2 and n["others"]["n"] == 6
    assert n["stragglers"]["truncation_rate"] == pytest.approx(0.5)
    assert n["others"]["truncation_rate"] == pytest.approx(0.0)
    assert n["stragglers"]["reasoning_tokens_mean"] == pytest.approx(600.0)
    assert n["stragglers"]["difficulty_mean"] == pytest.approx(5.0)
    assert "hit max_tokens" in " ".join(result.findings)


def test_open_loop_tail_and_p90_stragglers():
    rows = [request(i, sent=float(i), e2e=float(i + 1), completion_tokens=10 * (i + 1))
            for i in range(100)]
    result = analyze_stragglers(make_run(rows))
    n = result.numbers
    assert n["mode"] == "open"
    e2e = np.arange(1, 101, dtype=float)
    assert n["e2e_tail"]["p99_over_p50"] == pytest.approx(np.quantile(e2e, 0.99) / np.median(e2e))
    assert n["completion_tokens_tail"]["p99_over_p50"] == pytest.approx(
        np.quantile(10 * e2e, 0.99) / np.median(10 * e2e))
    assert n["stragglers"]["n"] == 10  # E2E above p90 (90.1 s): 91..100
    assert set(n["straggler_request_ids"]) == {f"req-{i}" for i in range(90, 100)}
    assert "batches" not in n


def test_a_tie_picks_one_straggler_per_batch():
    rows = [request(i, sent=0.0, e2e=2.0) for i in range(3)]
    n = analyze_stragglers(make_run(rows, spec=BATCH)).numbers
    assert n["straggler_request_ids"] == ["req-0"]
    assert n["batches"]["ratio_max"] == pytest.approx(1.0)
    assert n["batches"]["idle_fraction_overall"] == pytest.approx(0.0)


def test_stragglers_skip_a_run_without_two_requests():
    assert analyze_stragglers(make_run([request(0)])).skipped
