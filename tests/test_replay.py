"""Length replay (issue 14 item 3): fit the (prompt, reasoning, answer) lengths of stored
runs, replay them with forced output lengths, and flag requests whose length was not
honoured."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest
from scipy import stats

from reasonperf.config import load_run_spec
from reasonperf.errors import UsageError
from reasonperf.run import execute_run
from reasonperf.workload.lengths import fit_lengths
from reasonperf.workload.replay import load_replay
from tests.conftest import run_cli
from tests.fake_server import FakeServer, Programme
from tests.test_analysis_data import make_run, request

MU, SIGMA = 4.0, 0.5  # reasoning ~ lognormal(4, 0.5): median 55 tokens


def _synthetic_run(seed: int = 0, n: int = 300, uniform: bool = False):
    rng = np.random.default_rng(seed)
    reasoning = (rng.uniform(10, 200, n) if uniform
                 else np.exp(rng.normal(MU, SIGMA, n)) - 1).round().astype(int)
    answer = rng.integers(5, 20, n)
    prompt = rng.integers(20, 60, n)
    rows = [request(i, dataset="synth", difficulty=("hard" if i % 3 == 0 else "easy"),
                    prompt_tokens=int(p), reasoning_tokens=int(r), answer_tokens=int(a),
                    completion_tokens=int(r + a))
            for i, (p, r, a) in enumerate(zip(prompt, reasoning, answer, strict=True))]
    rows.append(request(n, status="error", prompt_tokens=None))  # left out: not ok
    rows.append(request(n + 1, reasoning_tokens=None))  # left out: unknown count
    return make_run(rows, name=f"synth{seed}")


def test_fit_groups_by_dataset_and_difficulty_with_a_lognormal_tail():
    fit = fit_lengths([_synthetic_run()])
    assert [(g["dataset"], g["difficulty"], g["n"]) for g in fit["groups"]] == [
        ("synth", "easy", 200), ("synth", "hard", 100)]
    assert fit["left_out_unknown_counts"] == 1
    r = fit["groups"][0]["marginals"]["reasoning_tokens"]
    assert r["lognormal"]["mu"] == pytest.approx(MU, abs=0.1)
    assert r["lognormal"]["sigma"] == pytest.approx(SIGMA, abs=0.1)
    assert r["lognormal"]["ks"] < 0.1 and r["lognormal"]["ks_p"] > 0.05
    assert r["tail"]["sigma"] == pytest.approx(SIGMA, abs=0.2)
    # a uniform marginal is told apart by its fit quality
    flat = fit_lengths([_synthetic_run(uniform=True)])["groups"][0]
    assert flat["marginals"]["reasoning_tokens"]["lognormal"]["ks_p"] < 0.05


def test_samples_keep_the_joint_and_extrapolate_past_the_data():
    fit = fit_lengths([_synthetic_run()])
    problems = load_replay_from(fit, n=3000)
    targets = np.array([[p.meta["replay"][k] for k in ("prompt_tokens", "reasoning_tokens")]
                        for p in problems if p.difficulty == "easy"])
    observed_max = max(row[1] for row in fit["groups"][0]["rows"])
    assert targets[:, 1].max() > observed_max  # the tail goes past the largest seen
    assert stats.ks_2samp(targets[:, 1],
                          [row[1] for row in fit["groups"][0]["rows"]]).pvalue > 0.05


def load_replay_from(fit, n, tmp=Path("/tmp")):
    path = tmp / f"lengths-{id(fit)}.json"
    path.write_bytes(orjson.dumps(fit))
    try:
        return load_replay(str(path), n, seed=1)
    finally:
        path.unlink()


def _replay(tmp_path: Path, url: str, lengths: Path, n: int):
    spec = load_run_spec({
        "name": "replay", "out": str(tmp_path / "runs"),
        "engine": {"kind": "external", "url": url, "model": "fake-model"},
        "workload": {"name": f"replay:{lengths}", "options": {"n": n}},
        "arrival": {"name": "concurrency", "concurrency": 50},
        "grade": False,
    })
    return execute_run(spec)


def _lengths(tmp_path: Path) -> tuple[Path, list[int]]:
    run = _synthetic_run()
    path = tmp_path / "lengths.json"
    path.write_bytes(orjson.dumps(fit_lengths([run])))
    ok = [r for r in run.requests.to_pylist() if r["status"] == "ok"
          and r["reasoning_tokens"] is not None]
    return path, [r["completion_tokens"] for r in ok]


def test_replay_reproduces_the_fitted_completion_lengths(tmp_path):
    lengths, original = _lengths(tmp_path)
    prog = Programme(ttft_s=0.001, itl_s=0.0, reasoning_tokens=3, answer_tokens=2,
                     tokens_per_chunk=16)
    with FakeServer(prog) as srv:
        res = _replay(tmp_path, srv.base_url, lengths, n=300)
    rep = res.summary["replay"]
    assert (rep["requests"], rep["mismatches"], rep["completion_unknown"]) == (300, 0, 0)
    rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    replayed = [r["completion_tokens"] for r in rows]
    assert replayed == [r["max_tokens"] for r in rows]
    assert stats.ks_2samp(replayed, original).pvalue > 0.05
    # the fake server counts prompt words: the filler hits the target exactly
    assert rep["prompt_tokens_error"] == {"mean": 0.0, "max_abs": 0, "requests": 300}
    assert {r["difficulty"] for r in rows} == {"easy", "hard"}


def test_a_server_that_stops_early_is_flagged(tmp_path):
    lengths, _ = _lengths(tmp_path)
    prog = Programme(itl_s=0.0, reasoning_tokens=30, answer_tokens=10, tokens_per_chunk=16,
                     forced_lengths=False)  # ignores min_tokens / ignore_eos
    with FakeServer(prog) as srv:
        res = _replay(tmp_path, srv.base_url, lengths, n=40)
    rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    short = [r for r in rows if r["max_tokens"] > 40]
    rep = res.summary["replay"]
    assert rep["mismatches"] == rep["short"] == len(short) > 0
    assert rep["examples"][0]["got"] == 40
    assert any("forced lengths failed" in w for w in res.summary["warnings"])


def test_cli_fit_and_its_errors(tmp_path):
    with FakeServer(Programme(itl_s=0.0, reasoning_tokens=8, answer_tokens=4)) as srv:
        r = run_cli("run", "--endpoint", srv.base_url, "--model", "fake-model", "--limit", "6",
                    "--no-grade", "--out", str(tmp_path / "runs"))
    assert r.returncode == 0, r.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    out = tmp_path / "l.json"
    r = run_cli("workload", "fit", str(run_dir), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "log-normal" in r.stdout and orjson.loads(out.read_bytes())["groups"]
    r = run_cli("workload", "fit", str(tmp_path), "-o", str(out))
    assert r.returncode == 2 and "not a run directory" in r.stderr
    r = run_cli("run", "--endpoint", "http://127.0.0.1:9/v1", "--workload",
                f"replay:{tmp_path / 'missing.json'}", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not found" in r.stderr


def test_the_lengths_file_is_pinned_for_resume(tmp_path, monkeypatch):
    from reasonperf.resume import check_inputs, pin_inputs

    (tmp_path / "l.json").write_bytes(orjson.dumps(fit_lengths([_synthetic_run()])))
    monkeypatch.chdir(tmp_path)
    spec, pinned = pin_inputs(load_run_spec({"workload": {"name": "replay:l.json"}}))
    assert spec.workload.name == f"replay:{tmp_path / 'l.json'}"
    assert pinned["workload.name"]["path"] == str(tmp_path / "l.json")
    (tmp_path / "l.json").write_text("{}")
    with pytest.raises(UsageError, match="changed since the run started"):
        check_inputs({"inputs": pinned})
