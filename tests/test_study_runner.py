"""Running studies against fake OpenAI servers: engine lifecycle per group, resume after a
kill, failed cells (engine start, timeout, dead engine, all requests failing) recorded
while the study goes on, the index and the report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import yaml

from reasonperf.engines import ExternalEngine, make_engine
from reasonperf.study import EngineSlots, plan_study, run_study
from tests.conftest import run_cli
from tests.fake_server import FakeServer, Programme

FAST = Programme(ttft_s=0.005, itl_s=0.001, reasoning_tokens=10, answer_tokens=5)


def _spec(tmp_path: Path, arms: dict[str, str], **over) -> Path:
    """A study with one arm per fake server URL and two token budgets."""
    data = {
        "name": "fake",
        "base": {"engine": {"kind": "external", "model": "fake-model"},
                 "workload": {"name": "procedural", "limit": 4},
                 "arrival": {"name": "batch", "batch_size": 4}, "timeout_s": 30},
        "matrix": {"arm": {name: {"engine": {"url": url}} for name, url in arms.items()},
                   "max_tokens": [16, 32]},
    }
    data.update(over)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _index(root: Path) -> dict:
    return orjson.loads((root / "study.json").read_bytes())


class _Counting:
    """An engine factory that records what it made."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def __call__(self, spec):
        self.made.append(spec.url)
        return make_engine(spec)


def test_cells_run_once_per_engine_group_and_a_rerun_runs_nothing(tmp_path):
    with FakeServer(FAST) as a, FakeServer(FAST) as b:
        path = _spec(tmp_path, {"a": a.base_url, "b": b.base_url})
        factory = _Counting()
        plan = plan_study(path, out=tmp_path / "out")
        res = run_study(plan, engines=EngineSlots(factory=factory))
        assert [c["status"] for c in res.cells] == ["ok"] * 4
        assert factory.made == [a.base_url, b.base_url]  # one start per engine group
        assert res.session["engine_starts"] == 2 and res.session["cells_run"] == 4
        html = (tmp_path / "out" / "report.html").read_text()
        assert all(c.id in html for c in plan.cells)
        assert "Arms on arm: b against a" in html  # the arm comparison
        assert "Token budget" in html
        index = _index(tmp_path / "out")
        assert index["counts"] == {"ok": 4} and index["report"] == "report.html"
        assert index["cells"][0]["settings"] == {"arm": {"engine": {"url": a.base_url}},
                                                 "max_tokens": 16}
        for cell in plan.cells:
            rows = pq.read_table(tmp_path / "out" / cell.id / "requests.parquet").to_pylist()
            assert len(rows) == 4 and all(r["max_tokens"] == cell.spec.sampling.max_tokens
                                          for r in rows)
            assert orjson.loads((tmp_path / "out" / cell.id / "cell.json").read_bytes())[
                "status"] == "ok"

        factory2 = _Counting()
        again = run_study(plan_study(path, out=tmp_path / "out"),
                          engines=EngineSlots(factory=factory2))
        assert factory2.made == [] and again.session["cells_already_done"] == 4
        assert again.session["cells_run"] == 0 and again.count("ok") == 4
        assert len(_index(tmp_path / "out")["sessions"]) == 2


def _popen_study(*args: str) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.Popen([sys.executable, "-m", "reasonperf", "study", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _lines(path: Path) -> int:
    try:
        return sum(1 for line in path.read_bytes().splitlines() if line.strip())
    except OSError:
        return 0


def test_a_killed_study_reruns_only_the_remaining_cells(tmp_path):
    # one request at a time, ~0.6 s each: a cell lasts over two seconds
    slow = Programme(ttft_s=0.02, itl_s=0.02, reasoning_tokens=20, answer_tokens=10)
    with FakeServer(slow) as srv:
        path = _spec(tmp_path, {"a": srv.base_url},
                     matrix={"arm": {"a": {"engine": {"url": srv.base_url}}},
                             "max_tokens": [16, 32, 48]})
        data = yaml.safe_load(path.read_text())
        data["base"]["arrival"] = {"name": "concurrency", "concurrency": 1}
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        out = tmp_path / "out"
        plan = plan_study(path, out=out)
        first, second, third = (out / c.id for c in plan.cells)

        proc = _popen_study(str(path), "--out", str(out))
        deadline = time.monotonic() + 120
        while _lines(second / "requests.jsonl") < 1:  # the second cell is under way
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the study never reached its second cell"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert orjson.loads((first / "cell.json").read_bytes())["status"] == "ok"
        assert orjson.loads((second / "cell.json").read_bytes())["status"] == "running"
        assert not third.exists()

        done = run_cli("study", str(path), "--out", str(out), timeout=300)
        assert done.returncode == 0, done.stderr
        session = _index(out)["sessions"][-1]
        assert session["cells_already_done"] == 1
        assert session["cells_resumed"] == 1 and session["cells_run"] == 1
        assert session["engine_starts"] == 1
        for cell_dir in (first, second, third):
            rows = pq.read_table(cell_dir / "requests.parquet").to_pylist()
            assert sorted(r["request_id"] for r in rows) == [f"r{i:06d}" for i in range(4)]
            assert all(r["status"] == "ok" for r in rows)
        assert (out / "report.html").exists() and "report:" in done.stdout


class _Mortal(ExternalEngine):
    """An external engine whose 'process' dies ``life_s`` after it starts."""

    def __init__(self, spec, life_s: float) -> None:
        super().__init__(spec)
        self.life_s = life_s
        self._born = 0.0

    def start(self, log_dir=None) -> None:
        super().start(log_dir)
        self._born = time.monotonic()

    @property
    def started(self) -> bool:
        return self._started and time.monotonic() - self._born < self.life_s


def test_a_dead_engine_fails_its_cell_and_is_restarted_for_the_next(tmp_path):
    slow = Programme(ttft_s=0.02, itl_s=0.02, reasoning_tokens=40, answer_tokens=10)
    made: list[_Mortal] = []

    def factory(spec):
        made.append(_Mortal(spec, life_s=0.3 if not made else 1e9))  # only the first dies
        return made[-1]

    with FakeServer(slow) as srv:
        plan = plan_study(_spec(tmp_path, {"a": srv.base_url}), out=tmp_path / "out")
        res = run_study(plan, engines=EngineSlots(factory=factory), poll_s=0.05)
    first, second = res.cells
    assert first["status"] == "failed" and "engine died" in first["error"]
    assert second["status"] == "ok"
    assert len(made) == 2 and res.session["engine_starts"] == 2
    assert res.session["cells_failed"] == 1


def test_timeouts_failed_starts_and_failing_requests_are_recorded_and_the_study_goes_on(
        tmp_path):
    slow = Programme(ttft_s=0.5, itl_s=0.2, reasoning_tokens=60, answer_tokens=10)  # >3 s
    broken = Programme(faults={"http500": 1.0})
    with FakeServer(FAST) as ok, FakeServer(slow) as sl, FakeServer(broken) as br:
        path = _spec(tmp_path, {"down": "http://127.0.0.1:9/v1", "slow": sl.base_url,
                                "broken": br.base_url, "ok": ok.base_url},
                     cell_timeout_s=2.0)
        data = yaml.safe_load(path.read_text())
        data["base"]["grade"] = False  # keeps the healthy cells far inside the time limit
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        out = tmp_path / "out"
        proc = run_cli("study", str(path), "--out", str(out), timeout=300)
    assert proc.returncode == 1, proc.stderr  # some cells failed
    cells = {c["id"]: c for c in _index(out)["cells"]}
    for budget in (16, 32):
        down = cells[f"arm-down__max_tokens-{budget}"]
        assert down["status"] == "failed"
        assert down["error"].startswith("engine failed to start: endpoint")
        assert "unreachable" in down["error"]
        slow_cell = cells[f"arm-slow__max_tokens-{budget}"]
        assert slow_cell["status"] == "failed" and "timeout" in slow_cell["error"]
        broken_cell = cells[f"arm-broken__max_tokens-{budget}"]
        assert broken_cell["status"] == "failed"
        assert broken_cell["error"].startswith("every request failed (http")
        assert cells[f"arm-ok__max_tokens-{budget}"]["status"] == "ok"
    assert "2 ok, 6 failed" in proc.stdout and (out / "report.html").exists()

    # a rerun (here with the failing arms pointed at a working server) runs the failed
    # cells again from scratch, keeps their earlier attempts aside, and skips the rest
    with FakeServer(FAST) as ok2:
        data = yaml.safe_load(path.read_text())
        for name in ("down", "slow", "broken"):
            data["matrix"]["arm"][name]["engine"]["url"] = ok2.base_url
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        proc = run_cli("study", str(path), "--out", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr
    index = _index(out)
    assert index["counts"] == {"ok": 8}
    assert index["sessions"][-1]["cells_run"] == 6
    assert index["sessions"][-1]["cells_already_done"] == 2
    kept = sorted(p.name for p in (out / "_failed").iterdir())
    assert kept == [f"arm-{a}__max_tokens-{b}.attempt-1" for a in ("broken", "slow")
                    for b in (16, 32)]
