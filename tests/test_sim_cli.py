"""calibrate / simulate / validate-sim on synthetic "measured" runs whose engine is the
reference scheduler with a known step-time model (so the right answers are known)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from reasonperf.records import ChunkEvent, RequestRecord, TimelineSample
from reasonperf.sim.calibrate import calibrate
from reasonperf.sim.core import simulate
from reasonperf.sim.model import EngineConfig, SimRequest
from reasonperf.sim.steptime import LinearStepTime
from reasonperf.store import RUN_JSON, RunStore
from reasonperf.telemetry import names
from tests.conftest import run_cli
from tests.sim_reference import reference_simulate

TRUE = LinearStepTime(c_step=0.02, c_seq=2e-4, c_kv=4e-7, c_prefill=3e-5)


def _requests(n: int, rate: float, seed: int) -> list[SimRequest]:
    rng = random.Random(seed)
    t, out = 0.0, []
    for _ in range(n):
        t += rng.expovariate(rate)
        o = rng.randint(60, 500)
        out.append(SimRequest(t, rng.randint(40, 400), o, int(o * rng.uniform(0.5, 0.95))))
    return out


def make_run(root: Path, name: str, reqs: list[SimRequest], cfg: EngineConfig) -> Path:
    """A run directory as `reasonperf run` writes it, timed by the reference engine."""
    chunks: dict[int, list[ChunkEvent]] = {i: [] for i in range(len(reqs))}
    made: dict[int, int] = dict.fromkeys(range(len(reqs)), 0)

    def on_tokens(i: int, t: float, n: int) -> None:
        kind = "reasoning" if made[i] < reqs[i].reasoning_tokens else "answer"
        made[i] += n
        chunks[i].append(ChunkEvent(f"r{i:04d}", t, kind, n, 4 * n))

    ref = reference_simulate(reqs, cfg, TRUE, on_tokens=on_tokens)
    ticks = simulate(reqs, cfg, TRUE, sample_interval_s=0.25).samples
    store = RunStore.create(root, name, exact_dir=root / name)
    store.write_json(RUN_JSON, {
        "run_id": name, "name": name,
        "spec": {"engine": {"kind": "vllm", "max_num_seqs": cfg.max_num_seqs},
                 "workload": {"name": "synthetic"}, "arrival": {"name": "poisson"},
                 "sample_interval_s": 0.25, "slo": {}},
        "engine": {"kind": "vllm", "served_model": "m",
                   "command": ["vllm", "--max-num-batched-tokens",
                               str(cfg.max_num_batched_tokens)]},
        "versions": {"vllm": "0.32.0"},
    })
    (root / name / "engine.log").write_text(
        # the engine reports one block more than it can use (vLLM's null block)
        f"INFO [kv_cache_utils.py] GPU KV cache size: {(cfg.kv_blocks + 1) * cfg.block_size:,} "
        "tokens\n")
    for i, r in enumerate(reqs):
        vis = ref.first_visible_s[i]
        store.append_request(RequestRecord(
            request_id=f"r{i:04d}", run_id=name, dataset="synthetic", problem_id=str(i),
            sample_index=0, difficulty=str(i % 3), scheduled_s=r.arrival_s, sent_s=r.arrival_s,
            first_token_s=float(ref.first_token_s[i]),
            first_visible_s=None if vis != vis else float(vis), done_s=float(ref.done_s[i]),
            prompt_tokens=r.prompt_tokens, completion_tokens=r.output_tokens,
            reasoning_tokens=r.reasoning_tokens,
            answer_tokens=r.output_tokens - r.reasoning_tokens, token_count_source="usage",
            finish_reason="stop"), chunks[i])
    samples = []
    for t, running, waiting, kv, pre in ticks:
        samples += [TimelineSample(t, "engine", names.REQUESTS_RUNNING, running),
                    TimelineSample(t, "engine", names.REQUESTS_WAITING, waiting),
                    TimelineSample(t, "engine", names.KV_CACHE_USAGE, kv),
                    TimelineSample(t, "engine", names.PREEMPTIONS_TOTAL, pre)]
    store.append_timeline(samples)
    store.fold()
    return root / name


AMPLE = EngineConfig(kv_blocks=4000, block_size=16, max_num_seqs=32, max_num_batched_tokens=1024)
TIGHT = EngineConfig(kv_blocks=160, block_size=16, max_num_seqs=32, max_num_batched_tokens=1024)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("simruns")
    return {
        "train": make_run(root, "train", _requests(60, 3.0, 1), AMPLE),
        "tight": make_run(root, "tight", _requests(60, 6.0, 2), TIGHT),
    }


@pytest.fixture(scope="module")
def cal_file(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cal") / "cal.json"
    proc = run_cli("calibrate", str(runs["train"]), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_calibration_recovers_the_step_time_model(runs: dict[str, Path]) -> None:
    from reasonperf.analysis.loader import load_run

    cal = calibrate([load_run(runs["train"])])
    st = cal["step_time"]
    assert st["c_step"] == pytest.approx(TRUE.c_step, rel=0.1)
    assert st["c_seq"] + st["c_decode"] == pytest.approx(TRUE.c_seq, rel=0.35)
    assert st["c_kv"] == pytest.approx(TRUE.c_kv, rel=0.35)
    assert st["c_prefill"] == pytest.approx(TRUE.c_prefill, rel=0.5)
    assert cal["engine"]["kv_blocks"] == AMPLE.kv_blocks
    assert cal["engine"]["kv_source"] == "engine log"
    assert cal["engine"]["max_num_batched_tokens"] == 1024


def test_validate_sim_on_a_held_out_preempting_arm(runs: dict[str, Path], cal_file: Path,
                                                   tmp_path: Path) -> None:
    proc = run_cli("validate-sim", str(runs["tight"]), "--calibration", str(cal_file),
                   "--out", str(tmp_path / "val"))
    assert proc.returncode == 0, proc.stderr
    assert "E2E" in proc.stdout and "preemptions" in proc.stdout
    v = json.loads((tmp_path / "val" / "validation.json").read_text())
    for key in ("e2e_mean_err", "ttft_mean_err", "e2e_mape", "kv_usage_rmse", "preemptions_err"):
        assert key in v
    assert v["preemptions_measured"] >= 10
    assert abs(v["e2e_mean_err"]) <= 0.10
    assert abs(v["preemptions_err"]) <= 0.10
    assert v["kv_usage_rmse"] <= 0.10  # near-full cache: KV flips with each preemption
    assert v["e2e_pearson_r"] > 0.9


def test_simulated_run_works_with_summary_and_compare(runs: dict[str, Path], cal_file: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "what-if"
    proc = run_cli("simulate", "--calibration", str(cal_file), "--workload", str(runs["train"]),
                   "--arrival", "poisson", "--rate", "5", "--num-requests", "80",
                   "--max-num-seqs", "8", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["simulated"] is True and info["simulation"]["engine"]["max_num_seqs"] == 8
    rows = pq.read_table(out / "requests.parquet").to_pylist()
    assert len(rows) == 80 and all(r["done_s"] > r["first_token_s"] > r["sent_s"] for r in rows)
    tl = pq.read_table(out / "timeline.parquet").to_pylist()
    running = [t["value"] for t in tl if t["metric"] == names.REQUESTS_RUNNING]
    assert max(running) == 8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["server"]["requests_running_max"] == 8
    assert 0 < summary["server"]["kv_cache_usage_max"] <= 1
    assert summary["requests"]
    for args in (("summary", str(out)), ("compare", str(runs["train"]), str(out)),
                 ("report", str(out), "--format", "md", "-o", str(tmp_path / "r.md"))):
        proc = run_cli(*args)
        assert proc.returncode == 0, proc.stderr
    assert "simulated-what-if" in (tmp_path / "r.md").read_text()  # the report names it


def test_sweep_prints_the_knee(runs: dict[str, Path], cal_file: Path) -> None:
    proc = run_cli("simulate", "--calibration", str(cal_file), "--workload", str(runs["train"]),
                   "--arrival", "poisson", "--num-requests", "60", "--sweep", "rate=1:9:4",
                   "--slo", "e2e=40")
    assert proc.returncode == 0, proc.stderr
    assert "goodput knee:" in proc.stdout and "rate sweep" in proc.stdout


@pytest.mark.parametrize("args, field", [
    (("simulate", "--calibration", "/nonexistent.json", "--workload", ".", "--out", "x"),
     "--calibration"),
    (("simulate", "--calibration", "CAL", "--workload", "RUN", "--sweep", "rate=5"), "--sweep"),
    (("simulate", "--calibration", "CAL", "--workload", "RUN", "--kv-dtype", "int3",
      "--out", "OUT"), "--kv-dtype"),
    (("calibrate", "/nonexistent-run", "-o", "x.json"), "run directory"),
])
def test_bad_input_is_one_line_exit_2(args: tuple[str, ...], field: str, runs: dict[str, Path],
                                      cal_file: Path, tmp_path: Path) -> None:
    subst = {"CAL": str(cal_file), "RUN": str(runs["train"]), "OUT": str(tmp_path / "o")}
    proc = run_cli(*(subst.get(a, a) for a in args))
    assert proc.returncode == 2
    assert field in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
