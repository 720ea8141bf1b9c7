import math

import numpy as np
import pyarrow as pa

from reasonperf.metrics.request import itl_values, request_metrics
from reasonperf.metrics.summary import describe, summarize, token_check
from reasonperf.records import CHUNK_SCHEMA, REQUEST_SCHEMA


def _table(rows):
    full = [{n: r.get(n) for n in REQUEST_SCHEMA.names} for r in rows]
    return pa.Table.from_pylist(full, schema=REQUEST_SCHEMA)


ROWS = [
    # thinks 1 s (11 reasoning tokens), answers 0.5 s (6 answer tokens)
    dict(request_id="a", status="ok", scheduled_s=0.0, sent_s=0.5, first_token_s=0.7,
         reasoning_end_s=1.7, first_visible_s=1.8, done_s=2.3, completion_tokens=17,
         reasoning_tokens=11, answer_tokens=6, correct=True),
    # no reasoning at all
    dict(request_id="b", status="ok", scheduled_s=1.0, sent_s=1.0, first_token_s=1.2,
         first_visible_s=1.2, done_s=3.2, completion_tokens=21, reasoning_tokens=0,
         answer_tokens=21, correct=False),
    dict(request_id="c", status="error", error_type="timeout", sent_s=1.0, done_s=9.0),
]


def test_request_metrics_definitions():
    m = request_metrics(_table(ROWS))
    assert np.allclose(m["ttft"][:2], [0.2, 0.2])
    assert np.allclose(m["ttfvt"][:2], [1.3, 0.2])
    assert math.isclose(m["thinking_s"][0], 1.0)
    assert math.isnan(m["thinking_s"][1])  # no reasoning: n/a, not a measured 0.0
    assert np.allclose(m["e2e"][:2], [1.8, 2.2])
    assert np.allclose(m["client_queue_s"][:2], [0.5, 0.0])
    assert np.allclose(m["tpot"][:2], [1.6 / 16, 2.0 / 20])
    assert math.isclose(m["reasoning_tpot"][0], 1.0 / 10)
    assert math.isnan(m["reasoning_tpot"][1])  # zero reasoning tokens: undefined, not zero
    assert np.allclose(m["answer_tpot"][:2], [0.5 / 5, 2.0 / 20])
    assert math.isnan(m["ttft"][2])


def test_itl_is_per_token_and_ignores_uncounted_chunks():
    chunks = pa.Table.from_pylist(
        [
            dict(request_id="a", t_s=1.0, kind="reasoning", n_tokens=1, n_chars=3),
            dict(request_id="a", t_s=1.4, kind="reasoning", n_tokens=4, n_chars=9),
            dict(request_id="a", t_s=1.5, kind="answer", n_tokens=1, n_chars=2),
            dict(request_id="b", t_s=0.0, kind="answer", n_tokens=None, n_chars=2),
            dict(request_id="b", t_s=5.0, kind="answer", n_tokens=None, n_chars=2),
        ],
        schema=CHUNK_SCHEMA,
    )
    assert np.allclose(sorted(itl_values(chunks)), sorted([0.1] * 5))


def test_summary_throughput_goodput_and_errors():
    s = summarize(_table(ROWS), slo={"ttfvt": 1.0})
    rate_limited = s["requests"].pop("rate_limited")
    assert s["requests"] == {"total": 3, "ok": 2, "errors": 1, "error_types": {"timeout": 1},
                             "finish_reasons": {"none": 3}}
    assert (rate_limited["count"], rate_limited["share"]) == (0, 0.0)
    tp = s["throughput"]
    assert math.isclose(tp["window_s"], 3.2 - 0.5)
    assert math.isclose(tp["request_throughput"], 2 / 2.7)
    assert math.isclose(tp["output_tps"], 38 / 2.7)
    assert math.isclose(tp["visible_tps"], 27 / 2.7)
    assert math.isclose(tp["paper_tps"], 38 / (3.2 - 1.2))
    # only b meets ttfvt <= 1 s, and b is wrong
    assert math.isclose(tp["goodput"], 1 / 2.7)
    assert tp["correct_goodput"] == 0.0
    assert math.isclose(tp["slo_attainment"], 1 / 3)


def test_describe_and_token_check():
    d = describe(np.array([1.0, 2.0, 3.0, 4.0, np.nan]))
    assert d["count"] == 4 and d["p50"] == 2.5 and d["max"] == 4.0 and d["min"] == 1.0
    assert describe(np.array([np.nan])) == {"count": 0}
    bad = _table([dict(request_id="x", status="ok", completion_tokens=10, reasoning_tokens=4, answer_tokens=6,
                       usage_completion_tokens=10, chunk_tokens_sum=9)])
    assert token_check(bad)["mismatches"] == 1


def test_summary_of_a_run_where_every_request_failed():
    rows = [dict(request_id="x", status="error", error_type="server_error", sent_s=0.0, done_s=1.0)]
    chunks = pa.Table.from_pylist([dict(request_id="x", t_s=0.5, kind="answer", n_tokens=1, n_chars=2)],
                                  schema=CHUNK_SCHEMA)
    s = summarize(_table(rows), chunks)
    assert s["requests"]["ok"] == 0 and s["requests"]["error_types"] == {"server_error": 1}
    assert s["throughput"]["request_throughput"] is None
