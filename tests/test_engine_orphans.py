"""An engine we launch dies with us, also when we are SIGKILLed (no atexit, no handler
runs then); and an engine left behind by an earlier process is found and reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from reasonperf.engines.lifeline import find_stale_engines
from reasonperf.engines.process import ManagedProcess
from tests.test_engine_vllm import _fake

psutil = pytest.importorskip("psutil")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _poll(cond: Callable[[], object], deadline_s: float, what: str) -> object:
    end = time.monotonic() + deadline_s
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < end, f"{what} not reached within {deadline_s:g} s"
        time.sleep(0.1)


def _kill_left(pids: list[int]) -> None:
    for pid in pids:  # only the pids this test watched, if the check failed
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.engine
def test_sigkilled_run_takes_its_vllm_engine_along(engine_test_models: dict[str, Path],
                                                   tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    model = engine_test_models["tiny-random"]
    env = {**os.environ, "REASONPERF_PID_DIR": str(tmp_path / "pids"), "COLUMNS": "160"}
    run = subprocess.Popen(
        [sys.executable, "-m", "reasonperf", "run", "--engine", "vllm", "--model", str(model),
         "--max-model-len", "1024", "--workload", "procedural", "--num-requests", "100000",
         "--arrival", "concurrency", "--concurrency", "1", "--max-tokens", "64",
         "--no-grade", "--out", str(tmp_path / "runs")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    pids: list[int] = []
    try:
        def engine_pid() -> int | None:
            for run_json in (tmp_path / "runs").glob("*/run.json"):
                info = json.loads(run_json.read_text())
                return (info.get("engine") or {}).get("pid")
            assert run.poll() is None, f"the run exited with {run.returncode}"
            return None

        server = int(_poll(engine_pid, 300, "a started engine in run.json"))  # type: ignore[arg-type]
        root = psutil.Process(server)
        pids = [server, *(c.pid for c in root.children(recursive=True))]
        assert len(pids) >= 2  # the API server and its engine-core process
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=30)
        _poll(lambda: not any(_alive(p) for p in pids), 60, "every engine process gone")
    finally:
        run.kill()
        run.wait()
        _kill_left(pids)


def test_a_stale_engine_is_found_from_its_pid_file(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A parent that dies without stopping its server (here: it never asked for the
    death signal) leaves a pid file that the next start reports, with how to stop it."""
    pid_dir = tmp_path / "pids"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from reasonperf.engines.process import ManagedProcess\n"
        "p = ManagedProcess([sys.executable, '-c', 'import time; time.sleep(120)'], {},\n"
        "                   Path(sys.argv[1]) / 'engine.log', pid_dir=Path(sys.argv[2]),\n"
        "                   die_with_parent=False)\n"
        "p.start()\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(pid_dir)],
                              stdout=subprocess.PIPE, text=True, env=env)
    server = int(parent.stdout.readline())
    try:
        assert find_stale_engines(pid_dir) == []  # its parent still runs it: not stale
        parent.kill()
        parent.wait()
        stale = find_stale_engines(pid_dir)
        assert [s.pid for s in stale] == [server]
        message = stale[0].describe()
        assert f"pid {server}" in message and f"kill -TERM -- -{server}" in message
        monkeypatch.setenv("REASONPERF_PID_DIR", str(pid_dir))
        with _fake() as engine:  # the next launch reports it (run.py copies it to warnings)
            assert engine.describe()["warnings"] == [message]
        os.killpg(server, signal.SIGTERM)
        _poll(lambda: not _alive(server), 10, "the stale server gone")
        assert find_stale_engines(pid_dir) == []
        assert list(pid_dir.iterdir()) == []  # the dead one's pid file was cleared
    finally:
        parent.kill()
        _kill_left([server])


def test_pid_file_lives_while_the_process_runs(tmp_path: Path) -> None:
    pid_dir = tmp_path / "pids"
    proc = ManagedProcess([sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ),
                          tmp_path / "engine.log", pid_dir=pid_dir)
    proc.start()
    try:
        record = json.loads((pid_dir / f"{proc.pid}.json").read_text())
        assert record["pid"] == proc.pid and record["parent_pid"] == os.getpid()
        assert record["command"][-1] == "import time; time.sleep(60)"
    finally:
        proc.stop(grace_s=2)
    assert not (pid_dir / f"{proc.pid}.json").exists()
