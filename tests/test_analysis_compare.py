"""compare: bootstrap deltas and verdicts on synthetic runs with known differences."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from reasonperf.analysis import stats_util as su
from reasonperf.analysis.compare import (
    CI_BATCHES,
    CI_REPEATS,
    CI_TIME_BLOCKS,
    NO_CI_ONE_RUN,
    NO_DIFF,
    compare_runs,
    compare_sides,
    compare_table,
    overall,
    verdict,
)
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
    assert table.columns == ["metric", "baseline (base)", "fast", "delta", "95% CI",
                             "CI method", "verdict"]
    rows = {r[0]: r for r in table.rows}
    assert rows["E2E p50"][6] == "faster"
    assert rows["E2E p50"][5] == "requests"
    assert rows["output tokens/s"][5] == "no CI: one run each"
    assert rows["output tokens/s"][4] == "n/a"
    assert rows["accuracy avg@n"][1] == "50.0 %"
    assert rows["accuracy avg@n"][5] == "problems (paired)"
    assert rows["accuracy avg@n"][6] == NO_DIFF
    assert rows["overall"][6] == "faster, same accuracy"
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
    assert verdict("latency", 0.5, 2.0, margin=1.0) == NO_DIFF  # not all beyond the band
    assert verdict("latency", 1.5, 2.0, margin=1.0) == "slower"
    rows = [{"kind": "latency", "label": "TTFT p50", "verdict": "faster"},
            {"kind": "latency", "label": "E2E p50", "verdict": "slower"},
            {"kind": "accuracy", "label": "accuracy", "verdict": "n/a"}]
    assert overall(rows) == ("mixed speed (faster: TTFT p50; slower: E2E p50), "
                             "accuracy not compared")


# --------------------------------------------------------------------------- CI methods


def _open_loop(name: str, seconds: float, tokens_per_request: int = 100, seed: int = 0,
               e2e: float = 1.0):
    """Requests arriving every 0.5 s for ``seconds``, each ``e2e`` long (jittered)."""
    rng = np.random.default_rng(seed)
    rows = [request(i, sent=0.5 * i, e2e=float(e2e * rng.lognormal(0, 0.1)),
                    completion_tokens=int(tokens_per_request * rng.lognormal(0, 0.1)))
            for i in range(int(seconds / 0.5))]
    return make_run(rows, name=name)


def test_whole_run_throughput_of_one_run_each_gets_no_ci_and_no_verdict():
    """The reported bug: two runs of one configuration were called "slower" on output
    tok/s with a per-request bootstrap CI of [-707, -697]. A 6-second run has under 10
    blocks of its longest request: no CI, no verdict."""
    a, b = _open_loop("a", 6, seed=1), _open_loop("b", 6, 90, seed=2)
    m = _metrics(compare_runs([a, b]))
    assert m["output_tps"]["delta"] is not None
    assert (m["output_tps"]["ci_low"], m["output_tps"]["ci_high"]) == (None, None)
    assert m["output_tps"]["ci_method"] == NO_CI_ONE_RUN
    assert m["output_tps"]["verdict"] == "n/a"


def test_long_runs_get_a_time_block_interval_for_throughput():
    same = [_open_loop(n, 120, seed=s) for n, s in (("a", 1), ("b", 2))]
    m = _metrics(compare_runs(same))
    assert m["output_tps"]["ci_method"] == CI_TIME_BLOCKS
    assert m["output_tps"]["ci_low"] < m["output_tps"]["delta"] < m["output_tps"]["ci_high"]
    assert m["output_tps"]["verdict"] == NO_DIFF
    more = _open_loop("more", 120, tokens_per_request=150, seed=3)
    m = _metrics(compare_runs([same[0], more]))
    assert m["output_tps"]["delta_pct"] == pytest.approx(50, abs=8)
    assert m["output_tps"]["verdict"] == "faster"


def _batched(name: str, seed: int, batches: int = 8, size: int = 8, slow: float = 1.0):
    """Batch-mode run whose batches share their fate: one random factor per batch (the
    load of that moment) times a small per-request jitter."""
    rng = np.random.default_rng(seed)
    rows, t = [], 0.0
    for b in range(batches):
        shared = rng.lognormal(0, 0.3)
        e2es = [slow * shared * float(rng.lognormal(0, 0.02)) for _ in range(size)]
        rows += [request(b * size + j, sent=t, e2e=e, ttft=e / 10, ttfvt=e / 2)
                 for j, e in enumerate(e2es)]
        t += max(e2es)
    return make_run(rows, name=name, spec={"arrival": {"name": "batch", "batch_size": size}})


def test_batches_are_resampled_whole_in_batch_mode():
    """Requests of one batch are not independent: a per-request bootstrap calls many
    same-configuration pairs different; resampling batches does not."""
    called = {"batches": 0, "requests": 0}
    for seed in range(10):
        a, b = _batched("a", 2 * seed), _batched("b", 2 * seed + 1)
        row = _metrics(compare_runs([a, b], n_boot=500))["e2e_p50"]
        assert row["ci_method"] == CI_BATCHES
        called["batches"] += row["verdict"] != NO_DIFF
        # the same data with the batches forgotten: requests resampled one by one
        for run in (a, b):
            run.info["spec"] = {"arrival": {"name": "poisson"}}
        row = _metrics(compare_runs([a, b], n_boot=500, min_effect_pct=0))["e2e_p50"]
        assert row["ci_method"] == "requests"
        called["requests"] += row["verdict"] != NO_DIFF
    assert called["batches"] == 0, called
    assert called["requests"] >= 5, called  # the per-request CI is far too narrow here
    slow = _metrics(compare_runs([_batched("a", 1), _batched("s", 2, slow=2.0)]))
    assert slow["e2e_p50"]["verdict"] == "slower"


def test_too_few_batches_give_no_latency_ci():
    a, b = _batched("a", 1, batches=3), _batched("b", 2, batches=3)
    row = _metrics(compare_runs([a, b]))["e2e_p50"]
    assert row["ci_method"].startswith("no CI") and row["verdict"] == "n/a"


def test_repeats_give_every_speed_metric_an_interval_over_runs():
    base = [_run(f"a{i}", seed=i) for i in range(3)]
    same = [_run(f"b{i}", seed=10 + i) for i in range(3)]
    fast = [_run(f"f{i}", speed=1.5, seed=20 + i) for i in range(3)]
    result = compare_sides([base, same, fast])
    assert [c["run"] for c in result.numbers["comparisons"]] == ["b0 x3", "f0 x3"]
    m_same, m_fast = _metrics(result, 0), _metrics(result, 1)
    for key in ("e2e_p50", "ttft_mean", "output_tps"):
        assert m_same[key]["ci_method"] == CI_REPEATS
        assert m_same[key]["verdict"] == NO_DIFF, (key, m_same[key])
    assert m_fast["e2e_p50"]["verdict"] == "faster"
    assert m_fast["output_tps"]["verdict"] == "faster"  # the same tokens, ended sooner
    # accuracy pools the repeats' samples per problem, paired on the same problems
    assert m_same["accuracy"]["ci_method"] == "problems (paired)"
    assert m_same["accuracy"]["delta"] == 0.0


def test_the_report_shows_each_interval_method():
    from reasonperf.analysis.compare import compare
    from reasonperf.report.markdown import render_markdown

    runs = [_run("base"), _run("fast", speed=2.0, seed=1)]
    md = render_markdown(runs, [compare(runs)])
    assert "| CI method |" in md
    assert "| requests |" in md and "| no CI: one run each |" in md


def test_token_windows_use_chunk_counts_where_complete_and_spread_the_rest():
    from reasonperf.analysis.compare import _token_windows
    from reasonperf.records import CHUNK_SCHEMA

    # 40 requests of 1 s every 0.5 s (20 s: 20 blocks of the longest request)
    rows = [request(i, sent=0.5 * i, e2e=1.0, ttft=0.0, completion_tokens=8)
            for i in range(40)]
    run = make_run(rows)
    chunks = [{"request_id": "req-0", "t_s": 1.0, "kind": "answer", "n_tokens": 8,
               "n_chars": 8},  # req-0: all 8 tokens at its end
              {"request_id": "req-1", "t_s": 1.5, "kind": "answer", "n_tokens": None,
               "n_chars": 8}]  # req-1: no count, so spread over [0.5, 1.5]
    run.chunks = pa.Table.from_pylist(chunks, schema=CHUNK_SCHEMA)
    w = _token_windows(su.ok_rows(run.requests), run.chunks)
    assert w is not None and w.block == 4 and w.width_s == pytest.approx(0.25, rel=0.01)
    assert w.counts.sum() == pytest.approx(40 * 8)
    # the first window [0, 0.25) holds req-0's spread share only if req-0 were spread
    assert w.counts[0] == pytest.approx(0.0)
    assert w.counts[2] == pytest.approx(8 * 0.25)  # [0.5, 0.75): req-1, spread
