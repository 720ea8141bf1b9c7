"""Summary honesty on whole runs against the fake server (what a real engine cannot do on
demand: ignore stream_options for some requests)."""

from __future__ import annotations

import json

import pytest

from reasonperf.client.openai import PROBE_TOKENS
from reasonperf.config import load_run_spec
from reasonperf.run import execute_run
from tests.fake_server import FakeServer, Programme


def _spec(tmp_path, url, metrics_url, limit):
    return load_run_spec({
        "name": "fake-usage",
        "out": str(tmp_path),
        "engine": {"kind": "external", "url": url, "metrics_url": metrics_url,
                   "model": "fake-model"},
        "workload": {"name": "procedural", "limit": limit},
        "arrival": {"name": "batch", "batch_size": limit},
        "grade": False,
        "sample_interval_s": 0.2,
    })


def test_a_fifth_without_usage_is_unknown_stated_and_warned(tmp_path):
    # request 1 is the continuous-usage probe; of the 10 run requests (2..11), 5 and 10
    # get no usage: a fifth, as measured against a server that ignores stream_options
    prog = Programme(ttft_s=0.01, itl_s=0.001, reasoning_tokens=30, answer_tokens=20,
                     no_usage_every=5)
    with FakeServer(prog) as srv:
        res = execute_run(_spec(tmp_path, srv.base_url, srv.url + "/metrics", 10))
        generated = srv.generation_tokens_total
    s = res.summary
    assert s["requests"]["ok"] == 10
    assert s["tokens"]["completion"] == 8 * 50
    assert s["tokens"]["coverage"] == pytest.approx(0.8)
    assert s["throughput"]["token_coverage"] == pytest.approx(0.8)
    assert s["throughput"]["output_tps"] > 0
    assert any("2 of 10" in w for w in s["warnings"]), s["warnings"]
    # the engine generated all 500 (+ the probe's tokens, before the baseline sample)
    assert generated == 10 * 50 + PROBE_TOKENS
    assert s["truth"]["tokens"]["engine"] == 500
    assert s["truth"]["tokens"]["agrees"] is False
    assert any("engine" in w for w in s["warnings"])
    info = json.loads((res.run_dir / "run.json").read_text())
    assert info["segments"][0]["probe_requests"] == 1


def test_throughput_after_a_resume_excludes_the_downtime(tmp_path):
    """Issue 9.12: windows are per segment; the time between segments is not active time."""
    import time

    flaky = Programme(ttft_s=0.01, itl_s=0.002, reasoning_tokens=10, answer_tokens=10,
                      faults={"http500": 0.5})
    with FakeServer(flaky) as srv:
        first = execute_run(_spec(tmp_path, srv.base_url, srv.url + "/metrics", 12))
        assert first.summary["requests"]["errors"] > 0
        srv.programme = Programme(ttft_s=0.01, itl_s=0.002, reasoning_tokens=10,
                                  answer_tokens=10)
        time.sleep(3.0)  # the downtime between the two segments (not a wait for anything)
        res = execute_run(resume=first.run_dir, retry_errors=True)
    info = json.loads((res.run_dir / "run.json").read_text())
    assert len(info["segments"]) == 2
    active = sum(s["ended_s"] - s["started_s"] for s in info["segments"])
    span = info["segments"][-1]["ended_s"] - info["segments"][0]["started_s"]
    assert span - active > 2.5  # the downtime is there
    tp = res.summary["throughput"]
    assert res.summary["requests"]["ok"] == 12
    assert tp["window_s"] <= active + 1e-6  # active time only, never the downtime
    assert tp["request_throughput"] >= 12 / active - 1e-6
