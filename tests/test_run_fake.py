"""Whole runs (workload -> runner -> store -> summary) against the fake server: the
edge cases a real engine cannot produce on demand (exact timings, faults, Ctrl-C)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from reasonperf.config import load_run_spec
from reasonperf.run import execute_run
from reasonperf.store import read_jsonl
from tests.conftest import run_cli
from tests.fake_server import FakeServer, Programme


def _spec(tmp_path: Path, url: str, **over):
    data = {
        "name": "fake",
        "out": str(tmp_path),
        "engine": {"kind": "external", "url": url, "model": "fake-model"},
        "workload": {"name": "procedural", "limit": 4},
        "arrival": {"name": "batch", "batch_size": 4},
        "grade": False,
    }
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(data.get(k), dict):
            data[k] = {**data[k], **v}
        else:
            data[k] = v
    return load_run_spec(data)


def _close(got: float, want: float) -> bool:
    return abs(got - want) <= max(0.005, 0.05 * want)


def test_programmed_timings_come_out_of_the_summary(tmp_path):
    prog = Programme(ttft_s=0.2, itl_s=0.01, reasoning_tokens=30, answer_tokens=20)
    with FakeServer(prog) as srv:
        for _attempt in range(3):  # a loaded 2-core box can wake a timer late; a bias fails all 3
            res = execute_run(_spec(tmp_path, srv.base_url))
            lat = res.summary["latency"]
            checks = [
                _close(lat["ttft"]["p50"], 0.2),
                _close(lat["ttfvt"]["p50"], 0.2 + 30 * 0.01),
                _close(lat["e2e"]["p50"], 0.2 + 49 * 0.01),
                _close(lat["tpot"]["p50"], 0.01),
                _close(lat["thinking_s"]["p50"], 0.30),
            ]
            if all(checks):
                break
        assert all(checks), lat
    req = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    assert len(req) == 4
    for r in req:
        assert (r["completion_tokens"], r["reasoning_tokens"], r["answer_tokens"]) == (50, 30, 20)
        assert r["token_count_source"] == "continuous_usage"
    assert res.summary["tokens"]["check"]["mismatches"] == 0
    # the fake server's /metrics was sampled into the timeline
    assert res.summary["server"]["engine_samples"] >= 2


def test_faults_are_classified_and_the_rest_intact(tmp_path):
    faults = {"cut": 0.1, "http500": 0.1, "http429": 0.1, "malformed": 0.1, "hang": 0.1}
    prog = Programme(ttft_s=0.005, itl_s=0.001, reasoning_tokens=10, answer_tokens=10, faults=faults)
    with FakeServer(prog, seed=7) as srv:
        res = execute_run(_spec(tmp_path, srv.base_url, timeout_s=1.0,
                                workload={"limit": 100}, arrival={"name": "concurrency", "concurrency": 25, "batch_size": None}))
    rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    assert len(rows) == 100 and len({r["request_id"] for r in rows}) == 100
    kinds = {}
    for r in rows:
        kinds[r["error_type"]] = kinds.get(r["error_type"], 0) + 1
    assert set(kinds) == {None, "disconnect", "http_5xx", "http_429", "malformed", "timeout"}, kinds
    assert 30 <= kinds[None] <= 70
    for r in rows:
        if r["status"] == "ok":
            assert r["completion_tokens"] == 20 and r["answer_text"] and r["finish_reason"] in ("stop", "length")
        else:
            assert r["finish_reason"] == "error" and r["error"]
    assert res.summary["requests"]["errors"] == 100 - kinds[None]


def test_api_key_never_reaches_files_or_output(tmp_path):
    secret = "sk-reasonperf-test-SECRET-123"
    with FakeServer(Programme(reasoning_tokens=3, answer_tokens=3)) as srv:
        proc = run_cli("run", "--endpoint", srv.base_url, "--model", "fake-model", "--limit", "3",
                       "--api-key-env", "RP_TEST_KEY", "--out", str(tmp_path), "--no-grade",
                       env={"RP_TEST_KEY": secret})
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout + proc.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "run.json" for p in files)
    for p in files:
        assert secret.encode() not in p.read_bytes(), p


def test_sigint_leaves_a_readable_run_and_resume_completes_it(tmp_path):
    prog = Programme(ttft_s=0.02, itl_s=0.01, reasoning_tokens=10, answer_tokens=10)
    with FakeServer(prog) as srv:
        args = [sys.executable, "-m", "reasonperf", "run", "--endpoint", srv.base_url,
                "--model", "fake-model", "--limit", "40", "--arrival", "concurrency",
                "--concurrency", "2", "--out", str(tmp_path), "--no-grade"]
        # a shell's background job starts with SIGINT ignored, and Python then never turns it
        # into KeyboardInterrupt: give the child the default disposition, as a terminal does
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "COLUMNS": "160"},
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 60
        log = None
        while time.monotonic() < deadline:
            logs = list(tmp_path.glob("*/requests.jsonl"))
            if logs and len(read_jsonl(logs[0])) >= 6:
                log = logs[0]
                break
            time.sleep(0.05)
        assert log is not None, "run never recorded 6 requests"
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "resume with" in err
        run_dir = log.parent
        first = pq.read_table(run_dir / "requests.parquet").to_pylist()
        assert 6 <= len(first) < 40
        assert all(r["status"] == "ok" for r in first)

        resumed = run_cli("run", "--resume", str(run_dir))
        assert resumed.returncode == 0, resumed.stderr
    rows = pq.read_table(run_dir / "requests.parquet").to_pylist()
    ids = [r["request_id"] for r in rows]
    assert len(ids) == 40 and len(set(ids)) == 40
    kept = {r["request_id"]: r for r in rows}
    for r in first:  # what was measured before the interrupt is kept as it was
        assert kept[r["request_id"]]["done_s"] == r["done_s"]


@pytest.fixture()
def fake_server_process():
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_server", "--answer-tokens", "5",
                             "--itl", "0.001"], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1])
    url = proc.stdout.readline().strip()
    assert url.startswith("http://"), url
    yield url
    proc.terminate()
    proc.wait(10)


def test_open_loop_dispatch_lag_at_50_rps(tmp_path, fake_server_process):
    """p99 of sent_s - scheduled_s under 5 ms at 50 req/s (the server runs in its own
    process). One retry: a 2-core box shared with other jobs can stall any process once;
    a real regression fails both attempts."""
    for _attempt in range(2):
        res = execute_run(_spec(tmp_path, fake_server_process, workload={"limit": 250},
                                arrival={"name": "poisson", "rate": 50.0, "batch_size": None}))
        rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
        assert len(rows) == 250 and all(r["status"] == "ok" for r in rows)
        lag = np.array([r["sent_s"] - r["scheduled_s"] for r in rows])
        if np.percentile(lag, 99) < 0.005:
            break
    assert np.percentile(lag, 99) < 0.005, np.percentile(lag, [50, 90, 99])


def test_summary_and_query_read_a_stored_run_from_disk(tmp_path):
    with FakeServer(Programme(reasoning_tokens=5, answer_tokens=5)) as srv:
        res = execute_run(_spec(tmp_path, srv.base_url, slo={"ttfvt": 30.0}))
    proc = run_cli("summary", str(res.run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    again = __import__("json").loads(proc.stdout)
    assert again["requests"] == res.summary["requests"]
    assert again["throughput"]["goodput"] == res.summary["throughput"]["goodput"] > 0
    q = run_cli("query", "select count(*) as n, sum(completion_tokens) as tok from requests",
                "--root", str(tmp_path))
    assert q.returncode == 0, q.stderr
    assert "40" in q.stdout and "4" in q.stdout  # 4 requests x 10 tokens
    bad = run_cli("query", "select nope from requests", "--root", str(tmp_path))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
