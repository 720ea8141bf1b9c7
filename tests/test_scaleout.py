"""Sharded runs against the fake server: one global schedule dealt to 2 local shard
processes, merged into one run (scaleout/)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from rich.console import Console
from scipy import stats

from reasonperf.scaleout.local import run_local
from reasonperf.workload.plan import request_id
from tests.conftest import run_cli
from tests.fake_server import FakeServer, Programme
from tests.test_run_fake import _spec

RATE = 100.0
N = 400
PROG = Programme(ttft_s=0.002, itl_s=0.001, reasoning_tokens=4, answer_tokens=4)


def _arrival(name: str) -> dict:
    if name == "gamma":
        return {"name": "gamma", "rate": RATE, "cv": 2.0, "batch_size": None}
    return {"name": "poisson", "rate": RATE, "batch_size": None}


def _dist(name: str):
    if name == "gamma":  # cv 2 -> shape 1/cv^2
        shape = 0.25
        return stats.gamma(a=shape, scale=1 / (RATE * shape)).cdf
    return stats.expon(scale=1 / RATE).cdf


def _sharded(tmp_path: Path, url: str, arrival: str):
    spec = _spec(tmp_path, url, workload={"limit": 50, "num_requests": N}, arrival=_arrival(arrival))
    return run_local(spec, 2, Console(stderr=True))


@pytest.mark.parametrize("arrival", ["poisson", "gamma"])
def test_two_shards_merge_to_the_planned_run_with_the_specified_arrivals(tmp_path, arrival):
    with FakeServer(PROG) as srv:
        run_dir, summary, failures = _sharded(tmp_path, srv.base_url, arrival)
    assert failures == []
    rows = pq.read_table(run_dir / "requests.parquet").to_pylist()
    ids = [r["request_id"] for r in rows]
    assert len(ids) == N and sorted(ids) == [request_id(i) for i in range(N)]
    assert {r["run_id"] for r in rows} == {run_dir.name}
    info = json.loads((run_dir / "run.json").read_text())
    assert [s["index"] for s in info["shards"]] == [0, 1]
    assert [s["requests"] for s in info["shards"]] == [N // 2, N // 2]
    for s in info["shards"]:
        for when in ("offset_start", "offset_end"):
            assert s[when]["bound_s"] == s[when]["rtt_s"] / 2
    assert summary["shards"] == info["shards"]
    assert summary["requests"]["total"] == N and summary["requests"]["errors"] == 0
    # the merged schedule is the one global process, not two independent streams
    sched = np.sort([r["scheduled_s"] for r in rows])
    assert stats.kstest(np.diff(sched), _dist(arrival)).pvalue > 0.001
    sent = np.sort([r["sent_s"] for r in rows])
    if arrival == "poisson":  # what was actually sent: gaps of ms, jitter of 0.1 ms
        assert stats.kstest(np.diff(sent), _dist(arrival)).pvalue > 0.001


def test_injected_clock_skew_is_recovered_within_rtt_half_and_flagged(tmp_path, monkeypatch):
    skew = 0.25
    monkeypatch.setenv("REASONPERF_TEST_CLOCK_SKEW_S", f"1:{skew}")
    with FakeServer(PROG) as srv:
        run_dir, summary, failures = _sharded(tmp_path, srv.base_url, "poisson")
    assert failures == []
    shards = summary["shards"]
    for s, truth in zip(shards, (0.0, skew), strict=True):
        for when in ("offset_start", "offset_end"):
            m = s[when]
            assert abs(m["offset_s"] - truth) <= m["bound_s"] + 1e-6, (when, m)
    flags = [w for w in summary["warnings"] if w.startswith("clock:")]
    assert flags and all("shard 1" in w for w in flags), summary["warnings"]
    # shard 1 sent on the common T0 and was placed back by its offset: one process again
    rows = pq.read_table(run_dir / "requests.parquet").to_pylist()
    sched = np.sort([r["scheduled_s"] for r in rows])
    assert stats.kstest(np.diff(sched), _dist("poisson")).pvalue > 0.001


def test_closed_loop_concurrency_is_split_over_shards(tmp_path):
    with FakeServer(PROG) as srv:
        spec = _spec(tmp_path, srv.base_url, workload={"limit": 30},
                     arrival={"name": "concurrency", "concurrency": 3, "batch_size": None})
        run_dir, summary, failures = run_local(spec, 2, Console(stderr=True))
        assert srv.max_in_flight <= 3
    assert failures == [] and summary["requests"]["total"] == 30
    info = json.loads((run_dir / "run.json").read_text())
    widths = [json.loads((Path(s["dir"]) / "run.json").read_text())["spec"]["arrival"]["concurrency"]
              for s in info["shards"]]
    assert widths == [3, 3]  # the spec is the whole run's; the split is in the arrival
    assert sorted(s["requests"] for s in info["shards"]) == [15, 15]


def test_shards_started_by_hand_merge_and_a_missing_shard_fails(tmp_path):
    with FakeServer(PROG) as srv:
        t0 = time.time() + 20  # both CLIs import and probe before then, even on a loaded box
        procs = [
            subprocess.Popen([sys.executable, "-m", "reasonperf", "run", "--endpoint", srv.base_url,
                              "--model", "fake-model", "--limit", "20", "--arrival", "poisson",
                              "--rate", "50", "--no-grade", "--out", str(tmp_path / f"s{i}"),
                              "--shard", f"{i}/2", "--t0", str(t0)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    dirs = [next((tmp_path / f"s{i}").iterdir()) for i in range(2)]
    proc = run_cli("merge", *map(str, dirs), "--out", str(tmp_path / "m"))
    assert proc.returncode == 0, proc.stderr
    merged = next((tmp_path / "m").iterdir())
    rows = pq.read_table(merged / "requests.parquet").to_pylist()
    assert sorted(r["request_id"] for r in rows) == [request_id(i) for i in range(20)]
    summary = json.loads((merged / "summary.json").read_text())
    assert any("offsets are unknown" in w for w in summary["warnings"])
    proc = run_cli("merge", str(dirs[0]), "--out", str(tmp_path / "m1"))
    assert proc.returncode == 1 and "missing" in proc.stderr


def test_bad_shard_flags_are_usage_errors(tmp_path):
    proc = run_cli("run", "--endpoint", "http://127.0.0.1:9/v1", "--shard", "2/2", "--t0", "1",
                   "--out", str(tmp_path))
    assert proc.returncode == 2 and "--shard" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("run", "--endpoint", "http://127.0.0.1:9/v1", "--shard", "0/2",
                   "--out", str(tmp_path))
    assert proc.returncode == 2 and "--t0" in proc.stderr


def test_workers_against_a_dead_endpoint_fail_in_one_line_and_leave_no_directory(tmp_path):
    proc = run_cli("run", "--endpoint", "http://127.0.0.1:9/v1", "--model", "m", "--workers", "2",
                   "--no-grade", "--out", str(tmp_path / "runs"))
    assert proc.returncode == 2 and "unreachable" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "runs").glob("*")) if (tmp_path / "runs").exists() else True
    proc = run_cli("run", "--resume", str(tmp_path), "--workers", "2")
    assert proc.returncode == 2 and "cannot be resumed" in proc.stderr
