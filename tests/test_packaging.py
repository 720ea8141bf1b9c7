"""The wheel: built as CI builds it, installed into an empty venv with no engine, it runs
`reasonperf --help`, `doctor` (which names the missing engine and how to get it) and a
run against the fake server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.fake_server import FakeServer, Programme

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    """The environment without anything that would import reasonperf from the source tree."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["COLUMNS"] = "160"
    return env


def _run(*args: object, timeout: float = 900, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=_env(), cwd=cwd)


def test_the_wheel_installs_without_an_engine_and_runs(tmp_path):
    dist = tmp_path / "dist"
    built = _run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, REPO)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(dist.glob("reasonperf-*.whl"))
    venv = tmp_path / "venv"
    assert _run(sys.executable, "-m", "venv", venv).returncode == 0
    installed = _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    assert installed.returncode == 0, installed.stderr[-2000:]
    exe = venv / "bin" / "reasonperf"

    helped = _run(exe, "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "doctor" in helped.stdout

    doctor = _run(exe, "doctor", "--json", cwd=tmp_path)
    assert doctor.returncode == 0, doctor.stderr
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert checks["vllm"]["found"] == "not installed"
    assert "reasonperf[cpu]" in checks["engine"]["fix"]

    with FakeServer(Programme(ttft_s=0.01, itl_s=0.001, reasoning_tokens=10,
                              answer_tokens=5)) as srv:
        ran = _run(exe, "run", "--endpoint", srv.base_url, "--model", "fake-model",
                   "--workload", "procedural", "--limit", "4", "--no-grade",
                   "--out", tmp_path / "runs", cwd=tmp_path, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    run_dir = next((tmp_path / "runs").iterdir())
    assert pq.read_table(run_dir / "requests.parquet").num_rows == 4
