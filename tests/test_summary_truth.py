"""The summary's honesty: unknowns stay unknown, exclusions are stated, segments do not
count downtime, ITL is not biased by bunched events, and the truth section compares the
client with the engine's own counters (constructed tables with known answers)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from reasonperf.metrics.request import itl_stats
from reasonperf.metrics.summary import summarize
from reasonperf.metrics.truth import truth_summary
from reasonperf.records import CHUNK_SCHEMA, REQUEST_SCHEMA, TIMELINE_SCHEMA
from reasonperf.telemetry import names
from reasonperf.telemetry.prometheus import parse_metrics


def _table(rows):
    full = [{n: r.get(n) for n in REQUEST_SCHEMA.names} for r in rows]
    return pa.Table.from_pylist(full, schema=REQUEST_SCHEMA)


def _ok(rid, sent, done, comp, **kw):
    base = dict(request_id=rid, status="ok", scheduled_s=sent, sent_s=sent,
                first_token_s=sent + 0.1, first_visible_s=sent + 0.1, done_s=done,
                completion_tokens=comp, reasoning_tokens=0 if comp is not None else None,
                answer_tokens=comp)
    base.update(kw)
    return base


# --------------------------------------------------------------------------- item 3


def test_missing_usage_is_unknown_not_zero_with_coverage_and_a_warning():
    rows = [_ok(f"r{i}", float(i), float(i) + 1.0, 10) for i in range(4)]
    rows.append(_ok("nousage", 4.0, 5.0, None))
    s = summarize(_table(rows))
    tok, tp = s["tokens"], s["throughput"]
    assert tok["completion"] == 40 and tok["requests_with_counts"] == 4
    assert tok["coverage"] == pytest.approx(0.8)
    assert tp["token_coverage"] == pytest.approx(0.8)
    assert tp["output_tps"] == pytest.approx(40 / 5.0)  # the counted tokens, coverage beside
    assert any("1 of 5" in w and "usage" in w for w in s["warnings"]), s["warnings"]


def test_no_request_with_counts_gives_none_not_zero():
    rows = [_ok("a", 0.0, 1.0, None), _ok("b", 0.5, 2.0, None)]
    s = summarize(_table(rows))
    assert s["tokens"]["completion"] is None
    assert s["throughput"]["output_tps"] is None and s["throughput"]["visible_tps"] is None
    assert s["throughput"]["token_coverage"] == 0.0
    assert s["warnings"]


# --------------------------------------------------------------------------- item 5


def _chunks(rows):
    return pa.Table.from_pylist(rows, schema=CHUNK_SCHEMA)


def test_itl_merges_same_timestamp_events_and_counts_qualified_requests():
    chunks = _chunks([
        # a: 4 tokens in three network reads; the 2nd and 3rd events share a timestamp
        dict(request_id="a", t_s=1.0, kind="reasoning", n_tokens=1, n_chars=5),
        dict(request_id="a", t_s=1.3, kind="reasoning", n_tokens=1, n_chars=5),
        dict(request_id="a", t_s=1.3, kind="answer", n_tokens=1, n_chars=5),
        dict(request_id="a", t_s=1.4, kind="answer", n_tokens=1, n_chars=5),
        # b: one chunk without a count -> the whole request is left out
        dict(request_id="b", t_s=0.0, kind="answer", n_tokens=1, n_chars=5),
        dict(request_id="b", t_s=0.5, kind="answer", n_tokens=None, n_chars=5),
        dict(request_id="b", t_s=1.0, kind="answer", n_tokens=1, n_chars=5),
    ])
    values, info = itl_stats(chunks)
    # a: gap 0.3 shared by 2 tokens -> 0.15, 0.15; then 0.1. No zero gap.
    assert np.allclose(sorted(values), [0.1, 0.15, 0.15])
    assert info["requests_qualified"] == 1
    assert info["excluded"] == {"a chunk without a token count": 1}


def test_summary_itl_block_states_qualified_requests():
    rows = [_ok("a", 0.0, 2.0, 3), _ok("b", 0.0, 2.0, 3),
            dict(request_id="c", status="error", error_type="timeout", sent_s=0.0, done_s=9.0)]
    chunks = _chunks([
        dict(request_id="a", t_s=1.0, kind="answer", n_tokens=1, n_chars=5),
        dict(request_id="a", t_s=1.2, kind="answer", n_tokens=2, n_chars=5),
        dict(request_id="b", t_s=1.0, kind="answer", n_tokens=None, n_chars=5),
        dict(request_id="c", t_s=1.0, kind="answer", n_tokens=1, n_chars=5),
        dict(request_id="c", t_s=1.5, kind="answer", n_tokens=1, n_chars=5),
    ])
    itl = summarize(_table(rows), chunks)["latency"]["itl"]
    assert itl["requests_qualified"] == 1
    assert itl["excluded"] == {"errors": 1, "a chunk without a token count": 1}
    assert itl["count"] == 2 and itl["p50"] == pytest.approx(0.1)


# --------------------------------------------------------------------------- item 11


def test_every_latency_block_states_n_and_exclusions_in_words():
    rows = [
        _ok("a", 0.0, 2.0, 10, reasoning_tokens=5, answer_tokens=5, reasoning_end_s=0.5,
            first_visible_s=0.6),
        # cut inside thinking: no visible token
        _ok("b", 0.0, 2.0, 10, reasoning_tokens=10, answer_tokens=0, reasoning_end_s=2.0,
            first_visible_s=None),
        dict(request_id="c", status="error", error_type="http_5xx", sent_s=0.0, done_s=0.1),
    ]
    lat = summarize(_table(rows))["latency"]
    ttfvt = lat["ttfvt"]
    assert ttfvt["count"] == 1 and ttfvt["requests"] == 3
    assert ttfvt["excluded"] == {"errors": 1, "no visible token": 1}
    assert "1 of 3 requests" in ttfvt["note"] and "no visible token" in ttfvt["note"]
    assert lat["ttft"]["excluded"] == {"errors": 1}
    assert lat["answer_tpot"]["excluded"]["errors"] == 1
    assert sum(lat["answer_tpot"]["excluded"].values()) == 2  # b has no answer tokens


def test_a_model_that_does_not_reason_has_thinking_na_not_zero():
    rows = [_ok("a", 0.0, 1.0, 5), _ok("b", 0.0, 1.0, 5)]
    th = summarize(_table(rows))["latency"]["thinking_s"]
    assert th["count"] == 0 and "mean" not in th
    assert th["excluded"] == {"no reasoning": 2}
    assert th["note"].startswith("n/a")


# --------------------------------------------------------------------------- item 12


def test_throughput_after_a_resume_sums_the_active_segments():
    # 6 requests in [0, 3], a 100 s outage, 6 requests in [103, 106]
    rows = [_ok(f"a{i}", 0.5 * i, 0.5 * i + 0.5, 10) for i in range(6)]
    rows += [_ok(f"b{i}", 103 + 0.5 * i, 103 + 0.5 * i + 0.5, 10) for i in range(6)]
    segments = [{"started_s": 0.0, "ended_s": 3.2}, {"started_s": 102.9, "ended_s": 106.2}]
    tp = summarize(_table(rows), segments=segments)["throughput"]
    assert tp["window_s"] == pytest.approx(6.0)
    assert tp["request_throughput"] == pytest.approx(12 / 6.0)
    assert tp["output_tps"] == pytest.approx(120 / 6.0)
    assert [w["window_s"] for w in tp["segments"]] == pytest.approx([3.0, 3.0])
    # without segments: one window (what a run that was never interrupted gets)
    one = summarize(_table(rows))["throughput"]
    assert one["window_s"] == pytest.approx(106.0)


# --------------------------------------------------------------------------- truth


def test_parse_maps_the_engines_ttft_and_e2e_histograms():
    text = """\
vllm:time_to_first_token_seconds_bucket{engine="0",le="+Inf",model_name="m"} 3.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="m"} 1.5
vllm:time_to_first_token_seconds_count{engine="0",model_name="m"} 3.0
vllm:e2e_request_latency_seconds_sum{engine="0",model_name="m"} 6.0
vllm:e2e_request_latency_seconds_count{engine="0",model_name="m"} 3.0
vllm:generation_tokens_total{engine="0",model_name="m"} 30.0
"""
    v = parse_metrics(text)
    assert v[names.TTFT_SECONDS_SUM] == 1.5 and v[names.TTFT_SECONDS_COUNT] == 3
    assert v[names.E2E_SECONDS_SUM] == 6.0 and v[names.E2E_SECONDS_COUNT] == 3


def _timeline(series):
    rows = [{"t_s": float(i), "source": names.SOURCE_ENGINE, "metric": m, "value": float(v)}
            for m, values in series.items() for i, v in enumerate(values)]
    return pa.Table.from_pylist(rows, schema=TIMELINE_SCHEMA)


def _truth_rows():
    # client: TTFT 0.11 s, E2E 1.05 s on both requests, 20 tokens each
    return _table([_ok("a", 0.0, 1.05, 20, first_token_s=0.11, first_visible_s=0.11),
                   _ok("b", 1.0, 2.05, 20, first_token_s=1.11, first_visible_s=1.11)])


def test_truth_ratios_offsets_and_flags():
    tl = _timeline({
        names.GENERATION_TOKENS_TOTAL: [100, 120, 140],
        names.TTFT_SECONDS_SUM: [5.0, 5.1, 5.2],   # engine mean 0.1 s over the run
        names.TTFT_SECONDS_COUNT: [10, 11, 12],
        names.E2E_SECONDS_SUM: [50.0, 50.5, 51.0],  # engine mean 0.5 s: client is 2.1x
        names.E2E_SECONDS_COUNT: [10, 11, 12],
    })
    t = truth_summary(_truth_rows(), tl, probe_requests=1)
    assert t["tokens"]["client"] == 40 and t["tokens"]["engine"] == 40
    assert t["tokens"]["diff"] == 0 and t["tokens"]["agrees"] is True
    req = t["requests"]
    assert (req["client"], req["engine"], req["probe_requests"]) == (2, 2, 1)
    assert "probe" in req["note"]
    assert t["ttft"]["ratio"] == pytest.approx(1.1) and t["ttft"]["in_band"] is True
    assert t["ttft"]["offset_s"] == pytest.approx(0.01)
    assert t["e2e"]["ratio"] == pytest.approx(2.1) and t["e2e"]["in_band"] is False
    assert "client" in t["ttft"]["explanation"]
    assert any("e2e" in f.lower() for f in t["flags"])


def test_truth_flags_a_token_total_that_differs_and_is_none_without_engine():
    tl = _timeline({names.GENERATION_TOKENS_TOTAL: [0, 55]})
    t = truth_summary(_truth_rows(), tl, probe_requests=0)
    assert t["tokens"]["diff"] == 15 and t["tokens"]["agrees"] is False
    assert t["ttft"]["engine_mean_s"] is None and t["ttft"]["ratio"] is None
    assert any("token" in f for f in t["flags"])
    empty = pa.Table.from_pylist([], schema=TIMELINE_SCHEMA)
    assert truth_summary(_truth_rows(), empty, probe_requests=0) is None


def test_summary_io_puts_truth_and_its_flags_in_warnings():
    from reasonperf.summary_io import compute_summary

    tl = _timeline({names.GENERATION_TOKENS_TOTAL: [0, 55]})
    info = {"segments": [{"started_s": 0.0, "ended_s": 3.0, "probe_requests": 1}]}
    s = compute_summary(info, _truth_rows(), pa.Table.from_pylist([], schema=CHUNK_SCHEMA), tl)
    assert s["truth"]["tokens"]["engine"] == 55
    assert any("engine" in w and "token" in w for w in s["warnings"]), s["warnings"]


def test_no_engine_metrics_no_truth():
    from reasonperf.summary_io import compute_summary

    empty = pa.Table.from_pylist([], schema=TIMELINE_SCHEMA)
    s = compute_summary({}, _truth_rows(), pa.Table.from_pylist([], schema=CHUNK_SCHEMA), empty)
    assert s["truth"] is None
    assert not math.isnan(s["throughput"]["window_s"])
