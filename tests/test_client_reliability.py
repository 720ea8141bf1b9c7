"""Client-side honesty under load and faults, against the fake server:
pool wait is client queue, never TTFT (issue 9.4); a dead endpoint stops the run with a
non-zero exit (10.1); 429s keep their Retry-After and are never retried silently (10.8)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from email.utils import formatdate
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reasonperf.client.openai import EndpointConfig, make_session, send_request
from reasonperf.client.runner import RunClock, run_load
from reasonperf.config import load_run_spec
from reasonperf.records import RequestPlan, RequestRecord
from reasonperf.run import execute_run
from reasonperf.store import read_jsonl
from reasonperf.workload.arrivals import Arrival
from tests.fake_server import FakeServer, Programme

MODEL = "fake-model"


def _plan(i: int) -> RequestPlan:
    return RequestPlan(request_id=f"r{i}", index=i, dataset="t", problem_id=str(i), sample_index=0,
                       messages=[{"role": "user", "content": "hi"}])


# --------------------------------------------------------------------- 9.4 pool wait


def test_pool_wait_is_recorded_as_client_queue_not_ttft():
    prog = Programme(ttft_s=1.0, itl_s=0.0, reasoning_tokens=0, answer_tokens=2)
    with FakeServer(prog) as srv:
        cfg = EndpointConfig(srv.base_url, MODEL)

        async def go() -> list[RequestRecord]:
            clock = RunClock.start()
            async with make_session(2) as session:  # 5 requests, 2 connections
                out = await asyncio.gather(*(send_request(session, cfg, _plan(i), clock, "t")
                                             for i in range(5)))
            return [r for r, _ in out]

        records = asyncio.run(go())
    assert all(r.status == "ok" for r in records)
    for r in records:
        # the server's TTFT; a request that waited for a connection would read >= 2 s
        assert 0.99 <= r.first_token_s - r.sent_s < 1.6, r
    waits = sorted(r.pool_wait_s for r in records)
    assert waits[:2] == [0.0, 0.0] and waits[-1] > 1.9, waits  # the fifth waited two rounds


def test_open_loop_pool_is_not_capped_below_the_offered_load(tmp_path):
    # 300 requests offered within 0.1 s, each held 2 s by the server: all 300 are in
    # flight at once unless the client caps its pool (it used to cap at 256, and the
    # queued requests then showed a TTFT of about two server TTFTs).
    prog = Programme(ttft_s=2.0, itl_s=0.0, reasoning_tokens=0, answer_tokens=1)
    with FakeServer(prog) as srv:
        res = execute_run(load_run_spec({
            "out": str(tmp_path), "grade": False, "continuous_usage": "on",
            "engine": {"kind": "external", "url": srv.base_url, "model": MODEL},
            "workload": {"name": "procedural", "limit": 5, "num_requests": 300},
            "arrival": {"name": "constant", "rate": 3000.0}}))
        in_flight = srv.max_in_flight
    rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    assert len(rows) == 300 and all(r["status"] == "ok" for r in rows)
    assert in_flight == 300
    assert max(r["pool_wait_s"] for r in rows) == 0.0
    assert max(r["first_token_s"] - r["sent_s"] for r in rows) < 3.5


# --------------------------------------------------------------------- runner stop


def test_run_load_stops_dispatching_when_asked_and_keeps_what_finished():
    plans = [_plan(i) for i in range(100)]
    for p in plans:
        p.scheduled_s = p.index * 0.01
    clock = RunClock.start()
    records: list[RequestRecord] = []
    stop = asyncio.Event()
    sent: list[str] = []

    async def send(plan: RequestPlan):
        sent.append(plan.request_id)
        await asyncio.sleep(0.02)
        return RequestRecord(plan.request_id, "t", "t", plan.problem_id, 0, sent_s=clock()), []

    def on_done(rec, chunks):
        records.append(rec)
        if len(records) == 5:
            stop.set()

    asyncio.run(run_load(plans, Arrival("open", [p.scheduled_s for p in plans], None, None),
                         send, on_done, clock, stop=stop))
    assert 5 <= len(sent) < 12
    assert sorted(r.request_id for r in records) == sorted(sent)  # in-flight ones finished


# --------------------------------------------------------------------- 10.1 dead endpoint


def _cli(tmp_path: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "reasonperf", "run", "--endpoint", url, "--model", MODEL,
            "--limit", "5", "--out", str(tmp_path), "--no-grade", *extra]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})


def _rows(tmp_path: Path) -> list[dict]:
    (log,) = list(tmp_path.glob("*/requests.jsonl"))
    return read_jsonl(log)


def _last_line(err: str) -> str:
    return err.strip().splitlines()[-1]


def test_server_killed_mid_run_stops_sending_and_exits_nonzero(tmp_path):
    srv = FakeServer(Programme(ttft_s=0.005, itl_s=0.001, reasoning_tokens=2, answer_tokens=2))
    srv.start()
    try:
        proc = _cli(tmp_path, srv.base_url, "--num-requests", "400", "--arrival", "constant",
                    "--rate", "40")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            logs = list(tmp_path.glob("*/requests.jsonl"))
            if logs and len(read_jsonl(logs[0])) >= 10:
                break
            time.sleep(0.02)
    finally:
        srv.stop()
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    line = _last_line(err)
    assert line.startswith("error:") and "stopped sending" in line and "connect" in line, line
    rows = _rows(tmp_path)
    assert len(rows) < 60, len(rows)  # 400 were scheduled over 10 s
    assert sum(r["status"] == "ok" for r in rows) >= 10  # what finished is kept
    assert (tmp_path.glob("*/requests.parquet").__next__()).exists()


@pytest.mark.parametrize(("programme", "words"), [
    (Programme(api_key="the-right-key"), "HTTP 401"),
    (Programme(json_answer=True), "JSON instead of an event stream"),
])
def test_every_request_refused_stops_the_run(tmp_path, programme, words):
    with FakeServer(programme) as srv:
        proc = _cli(tmp_path, srv.base_url, "--num-requests", "200", "--arrival", "concurrency",
                    "--concurrency", "2")
        _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err[-2000:]
    line = _last_line(err)
    assert "stopped sending" in line and words in line, line
    assert len(_rows(tmp_path)) < 20


def test_error_share_above_max_error_rate_fails_the_run(tmp_path):
    prog = Programme(ttft_s=0.0, itl_s=0.0, reasoning_tokens=1, answer_tokens=1,
                     faults={"http500": 0.7})
    with FakeServer(prog, seed=1) as srv:
        proc = _cli(tmp_path / "a", srv.base_url, "--num-requests", "20", "--batch-size", "20")
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err[-2000:]
        line = _last_line(err)
        assert "--max-error-rate 0.5" in line and "of 20 requests failed" in line, line
        (summary,) = list((tmp_path / "a").glob("*/summary.json"))
        assert any("--max-error-rate" in w for w in json.loads(summary.read_text())["warnings"])
        ok = _cli(tmp_path / "b", srv.base_url, "--num-requests", "20", "--batch-size", "20",
                  "--max-error-rate", "1")
        _out, err = ok.communicate(timeout=120)
        assert ok.returncode == 0, err[-2000:]


# --------------------------------------------------------------------- 10.8 rate limits


def test_429_keeps_retry_after_is_not_retried_and_has_its_own_share(tmp_path):
    prog = Programme(reasoning_tokens=1, answer_tokens=1, faults={"http429": 0.5}, retry_after="7")
    with FakeServer(prog, seed=3) as srv:
        res = execute_run(load_run_spec({
            "out": str(tmp_path), "grade": False, "max_error_rate": 1.0, "continuous_usage": "on",
            "engine": {"kind": "external", "url": srv.base_url, "model": MODEL},
            "workload": {"name": "procedural", "limit": 5, "num_requests": 20},
            "arrival": {"name": "batch", "batch_size": 20}}))
        received = srv.requests_received
        limited = srv.faults_injected["http429"]
    rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    assert received == 20  # one attempt per request: no retries
    assert 0 < limited < 20
    r429 = [r for r in rows if r["error_type"] == "http_429"]
    assert len(r429) == limited
    assert all(r["retry_after_s"] == 7.0 and r["http_status"] == 429 for r in r429)
    assert all(r["retry_after_s"] is None for r in rows if r["error_type"] != "http_429")
    rl = res.summary["requests"]["rate_limited"]
    assert rl["count"] == limited and rl["share"] == limited / 20
    assert rl["retry_after_s_max"] == 7.0
    assert res.failure is None


def test_retry_after_parses_seconds_and_http_dates():
    from reasonperf.client.openai import retry_after_seconds

    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(" 0 ") == 0.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("-3") is None
    later = retry_after_seconds(formatdate(time.time() + 120, usegmt=True))
    assert later is not None and 110 <= later <= 121
    assert retry_after_seconds(formatdate(time.time() - 120, usegmt=True)) == 0.0
