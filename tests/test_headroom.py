"""Headroom self-check: the client warns when it, not the server, limited the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasonperf import run as run_module
from reasonperf.client.headroom import headroom_warning, workers_needed
from tests.fake_server import FakeServer, Programme
from tests.test_run_fake import _spec


def _busy_send(original, busy_s: float):
    """send_request that first holds the event loop busy (a CPU-bound client)."""

    async def send(*args, **kwargs):
        end = time.thread_time() + busy_s  # CPU time of this thread: a CPU-bound client
        while time.thread_time() < end:
            pass
        return await original(*args, **kwargs)

    return send


def test_starved_client_warns_with_workers_needed(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(run_module, "send_request", _busy_send(run_module.send_request, 0.03))
    prog = Programme(ttft_s=0.002, itl_s=0.001, reasoning_tokens=5, answer_tokens=5)
    with FakeServer(prog) as srv:
        res = execute(tmp_path, srv.base_url, limit=60)
    client = res.summary["client"]
    assert client["loop_lag_ms"]["p99"] > 5, client
    warnings = [w for w in res.summary["warnings"] if w.startswith("client headroom")]
    assert len(warnings) == 1, res.summary["warnings"]
    # the busy loop burns CPU only as far as a loaded host lets it run: the workers advice
    # is asserted where the client did get its core (the rule itself: test_warning_rule)
    if client["cpu_share"]["overall"] > 0.8:
        assert "--workers" in warnings[0]


def test_light_run_has_no_headroom_warning(tmp_path: Path):
    prog = Programme(ttft_s=0.01, itl_s=0.005, reasoning_tokens=10, answer_tokens=10)
    with FakeServer(prog) as srv:
        for _attempt in range(3):  # a loaded shared box can starve any client; a bias fails all 3
            res = execute(tmp_path, srv.base_url, limit=8)
            client = res.summary["client"]
            if not any(w.startswith("client headroom") for w in res.summary["warnings"]):
                break
        assert client["loop_lag_ms"]["samples"] > 0
        assert not any(w.startswith("client headroom") for w in res.summary["warnings"]), client


def execute(tmp_path: Path, url: str, limit: int):
    spec = _spec(tmp_path, url, workload={"limit": limit},
                 arrival={"name": "concurrency", "concurrency": 4, "batch_size": None})
    return run_module.execute_run(spec)


def test_warning_rule():
    assert headroom_warning({"loop_lag_ms": {"p99": 1.0}, "cpu_share": {"overall": 0.3}}) is None
    line = headroom_warning({"loop_lag_ms": {"p99": 1.0}, "cpu_share": {"overall": 0.95, "p90": 1.0}})
    assert line is not None and "--workers 2" in line
    line = headroom_warning({"loop_lag_ms": {"p99": 20.0}, "cpu_share": {"overall": 0.2}})
    assert line is not None and "competed" in line
    assert workers_needed(1.3) == 3


def test_selfcheck_ramps_and_reports_rates_per_worker():
    from tests.conftest import run_cli

    proc = run_cli("selfcheck", "--budget", "4", "--step", "0.5", "--lag-limit-ms", "50", "--json")
    assert proc.returncode == 0, proc.stderr
    import json

    result = json.loads(proc.stdout)
    steps = result["steps"]
    assert steps and all(s["requests"] >= 10 and s["errors"] == 0 for s in steps), steps
    assert [s["rate"] for s in steps] == sorted(s["rate"] for s in steps)
    if result["sustainable_request_rate"] is not None:
        best = max(s["rate"] for s in steps if s["passed"])
        assert result["sustainable_request_rate"] == best
        assert result["sustainable_chunk_rate"] > 0


def test_selfcheck_bad_budget_is_a_usage_error():
    from tests.conftest import run_cli

    proc = run_cli("selfcheck", "--budget", "1", "--step", "2")
    assert proc.returncode == 2 and "--budget" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_cpu_hogs_on_the_clients_core_fire_the_warning(tmp_path: Path):
    """A real starved client: once it sends, three busy processes are pinned to its core
    and it is reniced, so the OS runs it a few % of the time."""
    prog = Programme(ttft_s=0.002, itl_s=0.001, reasoning_tokens=5, answer_tokens=5)
    hogs: list[subprocess.Popen[bytes]] = []
    with FakeServer(prog) as srv:
        client = subprocess.Popen(
            [sys.executable, "-m", "reasonperf", "run", "--endpoint", srv.base_url, "--model",
             "fake-model", "--limit", "120", "--arrival", "poisson", "--rate", "30",
             "--no-grade", "--out", str(tmp_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while not list(tmp_path.glob("*/requests.jsonl")):
                assert client.poll() is None and time.monotonic() < deadline, "client never sent"
                time.sleep(0.05)
            core = min(os.sched_getaffinity(client.pid))
            os.sched_setaffinity(client.pid, {core})
            os.setpriority(os.PRIO_PROCESS, client.pid, 10)
            for _ in range(3):
                hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                os.sched_setaffinity(hog.pid, {core})
                hogs.append(hog)
            assert client.wait(timeout=300) == 0
        finally:
            for hog in hogs:
                hog.kill()
                hog.wait()
            if client.poll() is None:
                client.kill()
    summary = json.loads(next(tmp_path.glob("*/summary.json")).read_text())
    assert summary["client"]["loop_lag_ms"]["p99"] > 5, summary["client"]
    assert any(w.startswith("client headroom") for w in summary["warnings"]), summary["warnings"]
