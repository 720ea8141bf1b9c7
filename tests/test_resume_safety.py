"""Resume is safe (issue 10, items 2-5): errors can be retried with numbered attempts, one
process per run directory, a finished run is left alone, the workload file is pinned, and
an unreachable endpoint leaves nothing behind. Against the fake server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
import yaml

from reasonperf.config import load_run_spec
from reasonperf.errors import UsageError
from reasonperf.run import execute_run
from reasonperf.store import read_jsonl
from tests.conftest import run_cli
from tests.fake_server import FakeServer, Programme

FAST = Programme(ttft_s=0.002, itl_s=0.0005, reasoning_tokens=3, answer_tokens=3)


def _spec(tmp_path: Path, url: str, **over):
    data = {
        "name": "safe",
        "out": str(tmp_path / "runs"),
        "engine": {"kind": "external", "url": url, "model": "fake-model"},
        "workload": {"name": "procedural", "limit": 12},
        "arrival": {"name": "batch", "batch_size": 4},
        "grade": False,
        "continuous_usage": "on",  # no probe request: the server counts only the workload
    }
    data.update(over)
    return load_run_spec(data)


def _cut_log(run_dir: Path, keep: int) -> None:
    """Keep the first ``keep`` request records, as if the client died after them."""
    lines = (run_dir / "requests.jsonl").read_bytes().splitlines(keepends=True)
    (run_dir / "requests.jsonl").write_bytes(b"".join(lines[:keep]))
    for name in ("requests.parquet", "summary.json"):
        (run_dir / name).unlink(missing_ok=True)


def _snapshot(run_dir: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and mtime, but the lock file (it holds the last holder's pid)."""
    return {str(p.relative_to(run_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


# --------------------------------------------------------------------------- item 2


def test_resume_retry_errors_resends_only_errored_requests_with_attempt_numbers(tmp_path):
    failing = Programme(ttft_s=0.002, itl_s=0.0005, reasoning_tokens=3, answer_tokens=3,
                        faults={"http500": 0.5})
    with FakeServer(failing, seed=3) as srv:
        res = execute_run(_spec(tmp_path, srv.base_url))
        first = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
        errored = {r["request_id"] for r in first if r["status"] != "ok"}
        assert 0 < len(errored) < 12
        srv.programme = FAST  # the server was "restarted" and works now
        before = srv.requests_received

        plain = run_cli("run", "--resume", str(res.run_dir))
        assert plain.returncode == 0, plain.stderr
        assert srv.requests_received == before  # errors are finished unless asked
        assert f"{len(errored)} errors" in plain.stderr and "--retry-errors" in plain.stderr

        again = run_cli("run", "--resume", str(res.run_dir), "--retry-errors")
        assert again.returncode == 0, again.stderr
        assert srv.requests_received == before + len(errored)
    n_err = len(errored)
    assert (f"resume: {12 - n_err} finished, {n_err} to send "
            f"({n_err} errors being retried)") in again.stderr
    rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    assert len(rows) == 12 and all(r["status"] == "ok" for r in rows)
    assert {r["request_id"]: r["attempt"] for r in rows} == {
        r["request_id"]: 2 if r["request_id"] in errored else 1 for r in first}
    history = read_jsonl(res.run_dir / "requests.jsonl")  # the error rows are kept
    assert len(history) == 12 + n_err
    assert sorted((r["request_id"], r["attempt"]) for r in history if r["status"] != "ok") == \
        sorted((rid, 1) for rid in errored)
    attempts = pq.read_table(res.run_dir / "attempts.parquet").to_pylist()
    assert {r["request_id"] for r in attempts} == errored
    assert res.summary["requests"]["errors"] == n_err
    assert orjson.loads((res.run_dir / "summary.json").read_bytes())["requests"]["errors"] == 0


def test_retry_errors_needs_resume():
    proc = run_cli("run", "--retry-errors", "--endpoint", "http://127.0.0.1:9/v1")
    assert proc.returncode == 2 and "--retry-errors" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- item 3


def test_a_second_process_on_a_run_exits_2_naming_the_holder(tmp_path):
    slow = Programme(ttft_s=6.0, itl_s=0.01, reasoning_tokens=5, answer_tokens=5)
    with FakeServer(FAST) as srv:
        res = execute_run(_spec(tmp_path, srv.base_url, workload={"name": "procedural",
                                                                 "limit": 16},
                                arrival={"name": "batch", "batch_size": 16}))
        _cut_log(res.run_dir, 4)
        srv.programme = slow
        before = srv.requests_received
        first = subprocess.Popen([sys.executable, "-m", "reasonperf", "run", "--resume",
                                  str(res.run_dir)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and srv.requests_received == before:
            time.sleep(0.02)  # the first process holds the lock once it sends
        assert srv.requests_received > before
        second = run_cli("run", "--resume", str(res.run_dir))
        _out, err = first.communicate(timeout=120)
        assert first.returncode == 0, err
        sent = srv.requests_received - before
    assert second.returncode == 2, second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert sent == 12  # only the missing requests, once
    ids = [r["request_id"] for r in pq.read_table(res.run_dir / "requests.parquet").to_pylist()]
    assert len(ids) == 16 == len(set(ids))


def test_the_lock_dies_with_its_process(tmp_path):
    from reasonperf.dirlock import DirLock

    code = ("import sys, time; from reasonperf.dirlock import DirLock; "
            "lock = DirLock(sys.argv[1], 'run directory'); lock.acquire(); "
            "print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(UsageError, match=f"pid {holder.pid}"):
            DirLock(tmp_path, "run directory").acquire()
    finally:
        holder.kill()
        holder.wait(10)
    with DirLock(tmp_path, "run directory"):  # a crashed holder left no lock behind
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


def test_a_second_study_on_one_output_folder_exits_2(tmp_path):
    from reasonperf.dirlock import DirLock

    with FakeServer(FAST) as srv:
        spec = {"name": "locked",
                "base": {"engine": {"kind": "external", "model": "fake-model",
                                    "url": srv.base_url},
                         "workload": {"name": "procedural", "limit": 2}},
                "matrix": {"max_tokens": [8]}}
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump(spec))
        out = tmp_path / "out"
        out.mkdir()
        with DirLock(out, "study output folder"):
            proc = run_cli("study", str(path), "--out", str(out))
            assert srv.requests_received == 0
    assert proc.returncode == 2, proc.stderr
    assert f"pid {os.getpid()}" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- item 4


def test_resume_of_a_finished_run_writes_nothing(tmp_path):
    with FakeServer(FAST) as srv:
        res = execute_run(_spec(tmp_path, srv.base_url))
        before = _snapshot(res.run_dir)
        n = srv.requests_received
        proc = run_cli("run", "--resume", str(res.run_dir))
        assert srv.requests_received == n
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stderr
    assert _snapshot(res.run_dir) == before


def test_workload_file_is_pinned_absolute_and_by_hash(tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    rows = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(6)]
    (here / "items.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    with FakeServer(FAST) as srv:
        proc = run_cli("run", "--endpoint", srv.base_url, "--model", "fake-model",
                       "--workload", "items.jsonl", "--field-map",
                       "prompt=question,answer=answer", "--out", "runs", "--no-grade",
                       cwd=here)
        assert proc.returncode == 0, proc.stderr
        run_dir = next((here / "runs").iterdir())
        info = orjson.loads((run_dir / "run.json").read_bytes())
        pinned = info["inputs"]["workload.name"]
        assert pinned["path"] == str(here / "items.jsonl")
        assert len(pinned["sha256"]) == 64
        _cut_log(run_dir, 2)
        elsewhere = run_cli("run", "--resume", str(run_dir), cwd=tmp_path)  # another cwd
        assert elsewhere.returncode == 0, elsewhere.stderr
        assert "4 to send" in elsewhere.stderr
        assert len(pq.read_table(run_dir / "requests.parquet")) == 6

        _cut_log(run_dir, 2)
        with (here / "items.jsonl").open("ab") as fh:
            fh.write(orjson.dumps({"question": "new?", "answer": "1"}) + b"\n")
        n = srv.requests_received
        changed = run_cli("run", "--resume", str(run_dir), cwd=tmp_path)
        assert srv.requests_received == n
    assert changed.returncode == 2
    assert "changed" in changed.stderr and "items.jsonl" in changed.stderr
    assert len(changed.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- item 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_endpoint_leaves_no_run_directory(tmp_path):
    out = tmp_path / "runs"
    proc = run_cli("run", "--endpoint", f"http://127.0.0.1:{_free_port()}/v1", "--model", "m",
                   "--limit", "2", "--out", str(out), "--no-grade")
    assert proc.returncode == 2, proc.stderr
    assert "unreachable" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_an_engine_that_cannot_start_leaves_no_run(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        out = tmp_path / "runs"
        proc = run_cli("run", "--engine", "vllm", "--model", str(tmp_path), "--port", str(port),
                       "--limit", "1", "--out", str(out), timeout=120)
    assert proc.returncode == 2, proc.stderr
    leftovers = [p for p in out.rglob("*")] if out.exists() else []
    assert not [p for p in leftovers if p.name == "run.json" or p.suffix == ".parquet"]
    assert all(p.is_dir() or p.name == "engine.log" for p in leftovers), leftovers
