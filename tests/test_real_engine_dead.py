"""A launched vLLM CPU engine killed mid-run (issue 10.1): the run stops sending, keeps
what finished, exits non-zero with one line naming the engine's exit status, and leaves
no engine process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from reasonperf.store import read_jsonl

pytestmark = pytest.mark.engine


def test_engine_killed_mid_run_stops_the_run_with_its_exit_status(tmp_path, engine_test_models):
    pytest.importorskip("vllm")
    args = [sys.executable, "-m", "reasonperf", "run", "--engine", "vllm",
            "--model", str(engine_test_models["tiny-random"]), "--max-model-len", "4096",
            "--workload", "procedural", "--limit", "5", "--num-requests", "400",
            "--arrival", "constant", "--rate", "4", "--max-tokens", "16",
            "--out", str(tmp_path), "--no-grade"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    pid = None
    deadline = time.monotonic() + 400
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            logs = list(tmp_path.glob("*/requests.jsonl"))
            if logs and len(read_jsonl(logs[0])) >= 4:
                pid = json.loads((logs[0].parent / "run.json").read_text())["engine"]["pid"]
                break
            time.sleep(0.1)
        assert pid is not None, proc.communicate(timeout=30)[1][-3000:]
        os.kill(pid, signal.SIGKILL)
        _out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err[-3000:]
    line = err.strip().splitlines()[-1]
    print(line)  # shown with -rP: the one line a user reads
    assert line.startswith("error: stopped sending: the engine process exited with status -9"), line
    assert "engine.log" in line
    run_dir = next(tmp_path.glob("*/requests.jsonl")).parent
    rows = read_jsonl(run_dir / "requests.jsonl")
    assert sum(r["status"] == "ok" for r in rows) >= 4  # what finished is kept
    assert len(rows) < 40  # 400 were scheduled over 100 s
    info = json.loads((run_dir / "run.json").read_text())
    assert info["segments"][-1]["failure"].startswith("stopped sending")
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
