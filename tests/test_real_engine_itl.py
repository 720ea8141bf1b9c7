"""ITL on the real vLLM CPU engine (issue 9 item 5): per-token gaps from per-chunk counts,
same-read events merged, only fully counted requests, and consistent with TPOT."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from reasonperf.config import load_run_spec
from reasonperf.run import execute_run

pytestmark = pytest.mark.engine


def _spec(tmp_path, engine, continuous_usage: str):
    return load_run_spec({
        "name": f"itl-{continuous_usage}", "out": str(tmp_path),
        "engine": {"kind": "external", "url": engine.base_url,
                   "metrics_url": engine.metrics_url, "model": engine.served_model},
        "workload": {"name": "procedural", "limit": 8},
        "arrival": {"name": "batch", "batch_size": 8},
        "sampling": {"max_tokens": 256}, "continuous_usage": continuous_usage,
        "grade": False,
    })


def test_itl_counts_every_token_gap_once_and_agrees_with_tpot(tmp_path, vllm_tiny_random):
    res = execute_run(_spec(tmp_path, vllm_tiny_random, "on"))
    itl = res.summary["latency"]["itl"]
    rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    chunks = pq.read_table(res.run_dir / "chunks.parquet").to_pylist()
    by_request = {r["request_id"]: [c for c in chunks if c["request_id"] == r["request_id"]]
                  for r in rows}
    assert all(c["n_tokens"] is not None for c in chunks)  # continuous usage: every chunk counted
    # a request whose whole answer came in one network read (a starved API server can
    # deliver that way) has no gap to time; every other one qualifies
    timed = {rid: mine for rid, mine in by_request.items() if len({c["t_s"] for c in mine}) > 1}
    assert timed, "no request streamed over more than one read"
    assert itl["requests_qualified"] == len(timed), itl
    assert itl["excluded"].get("fewer than 2 timed token events", 0) == 8 - len(timed), itl
    # one ITL value per token after each request's first read (same-timestamp events merged)
    expected = sum(c["n_tokens"] for mine in timed.values()
                   for c in mine if c["t_s"] > min(x["t_s"] for x in mine))
    assert itl["count"] == expected
    assert itl["min"] > 0  # no zero gaps from events that shared a network read
    # the token-weighted mean gap is the decode time after the first read, over the tokens
    spans = sum(max(c["t_s"] for c in mine) - min(c["t_s"] for c in mine)
                for mine in timed.values())
    assert np.isclose(itl["mean"] * itl["count"], spans, rtol=1e-6)


def test_without_per_chunk_counts_no_itl_is_guessed(tmp_path, vllm_tiny_random):
    res = execute_run(_spec(tmp_path, vllm_tiny_random, "off"))
    itl = res.summary["latency"]["itl"]
    assert itl["count"] == 0 and itl["requests_qualified"] == 0
    assert sum(itl["excluded"].values()) == 8, itl
