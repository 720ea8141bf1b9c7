"""The simulator against the real vLLM CPU engine (reduced size; prefix caching off, since
the simulator does not model prefix hits).

(a) Forced lengths: tiny-random never emits EOS, so every reply is exactly max_tokens;
16 identical-length prompts in one batch (so the order in which the API server hands them
to the engine does not matter), max_num_seqs 4, a 9-block cache that preempts. The
simulated step count (``vllm:iteration_tokens_total`` count) equals the engine's within
2 %, the preemption count within 2 % or one preemption (the engine's own run-to-run spread:
two identical runs gave 18 and 19).
(b) SmolLM2-135M (replies of varied length) on a 16-block cache: calibrate on the batch
arm (16 at once: batch sizes 16 down to 1, preemptions), validate on two held-out arms
(concurrency 4; Poisson 1.5 req/s). The errors are printed (SIM-VS-ENGINE lines); the
bound asserted on E2E is loose because eight jobs share this 2-core machine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from reasonperf.config import load_run_spec
from reasonperf.engines import EngineSpec, LaunchedEngine, make_engine
from reasonperf.engines.models import SMOLLM2_NAME, cache_dir, is_complete
from reasonperf.run import execute_run
from tests.conftest import run_cli

pytestmark = pytest.mark.engine

BLOCK = 128  # the vLLM CPU build's block size


def _serve(spec: EngineSpec, log_dir: Path) -> Iterator[LaunchedEngine]:
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed")
    engine = make_engine(spec)
    assert isinstance(engine, LaunchedEngine)
    engine.start(log_dir)
    try:
        yield engine
    finally:
        engine.stop()


def _counters(url: str) -> dict[str, float]:
    """Raw /metrics: the engine step count and the preemption counter."""
    async def go() -> str:
        async with aiohttp.ClientSession() as s, s.get(url) as resp:
            return await resp.text()

    out = {"steps": 0.0, "preemptions": 0.0}
    for line in asyncio.run(go()).splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name == "vllm:iteration_tokens_total_count":
            out["steps"] += float(line.rsplit(" ", 1)[1])
        elif name == "vllm:num_preemptions_total":
            out["preemptions"] += float(line.rsplit(" ", 1)[1])
    return out


def _run(out: Path, engine: LaunchedEngine, name: str, arrival: dict, workload: dict,
         max_tokens: int) -> Path:
    spec = load_run_spec({
        "name": name, "out": str(out),
        "engine": {"kind": "external", "url": engine.base_url,
                   "metrics_url": engine.metrics_url, "model": engine.served_model},
        "workload": workload, "arrival": arrival, "sampling": {"max_tokens": max_tokens},
        "sample_interval_s": 0.25, "grade": False,
    })
    return execute_run(spec).run_dir


def _settings(blocks: int, seqs: int) -> list[str]:
    # the run talks to an external engine, so its settings are passed (CPU API defaults)
    return ["--kv-blocks", str(blocks), "--block-size", str(BLOCK), "--max-num-seqs", str(seqs),
            "--max-num-batched-tokens", "2048"]


def _validate(run: Path, cal: Path, out: Path, settings: list[str]) -> dict:
    proc = run_cli("validate-sim", str(run), "--calibration", str(cal), "--out", str(out),
                   *settings)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "validation.json").read_text())


@pytest.fixture(scope="module")
def forced_engine(engine_test_models: dict[str, Path],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchedEngine]:
    spec = EngineSpec(kind="vllm", model=str(engine_test_models["tiny-random"]),
                      max_model_len=1024, num_gpu_blocks_override=9, max_num_seqs=4,
                      enable_prefix_caching=False)
    yield from _serve(spec, tmp_path_factory.mktemp("sim-forced"))


def test_forced_lengths_preemptions_and_steps_match_the_engine(
        tmp_path: Path, forced_engine: LaunchedEngine) -> None:
    data = tmp_path / "same.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Add 17 and 25, problem {i:02d}.",
                                        "answer": "42"}) + "\n" for i in range(16)))
    workload = {"name": str(data), "field_map": {"prompt": "prompt", "answer": "answer"}}
    before = _counters(forced_engine.metrics_url)
    run = _run(tmp_path, forced_engine, "forced", {"name": "batch", "batch_size": 16},
               workload, 360)
    after = _counters(forced_engine.metrics_url)
    cal = tmp_path / "cal.json"
    cal.write_text(json.dumps({"step_time": {"kind": "linear", "c_step": 0.003}}))
    v = _validate(run, cal, tmp_path / "val", _settings(9, 4))
    engine_steps = after["steps"] - before["steps"]
    engine_pre = after["preemptions"] - before["preemptions"]
    print("SIM-VS-ENGINE forced", json.dumps({
        "engine_steps": engine_steps, "sim_steps": v["steps_simulated"],
        "engine_preemptions": engine_pre, "sim_preemptions": v["preemptions_simulated"]}))
    assert engine_pre > 0, "the cache is not small enough to preempt"
    # two identical runs of this engine gave 18 and 19 preemptions: one is its own spread
    assert abs(v["preemptions_simulated"] - engine_pre) <= max(1.0, 0.02 * engine_pre)
    assert v["steps_simulated"] == pytest.approx(engine_steps, rel=0.02)


@pytest.fixture(scope="module")
def smollm2_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchedEngine]:
    model = cache_dir() / SMOLLM2_NAME
    if not is_complete(model):
        pytest.skip("SmolLM2 is not prepared (reasonperf engine prepare)")
    spec = EngineSpec(kind="vllm", model=str(model), max_model_len=1024,
                      num_gpu_blocks_override=16, enable_prefix_caching=False)
    yield from _serve(spec, tmp_path_factory.mktemp("sim-smollm2"))


def test_calibrated_on_one_arm_validated_on_held_out_arms(
        tmp_path: Path, smollm2_engine: LaunchedEngine) -> None:
    workload = {"name": "procedural", "limit": 16, "options": {"levels": [1, 3]}}
    arms = {
        "batch": {"name": "batch", "batch_size": 16},
        "concurrency4": {"name": "concurrency", "concurrency": 4},
        "poisson": {"name": "poisson", "rate": 1.5},
    }
    runs = {name: _run(tmp_path, smollm2_engine, name, arrival, workload, 128)
            for name, arrival in arms.items()}
    cal = tmp_path / "cal.json"
    settings = _settings(16, 128)
    proc = run_cli("calibrate", str(runs["batch"]), "-o", str(cal), *settings)
    assert proc.returncode == 0, proc.stderr
    for name in ("concurrency4", "poisson"):
        v = _validate(runs[name], cal, tmp_path / f"val-{name}", settings)
        keys = ("e2e_mean_err", "e2e_median_ape", "ttft_mean_err", "ttft_median_ape",
                "e2e_mape", "kv_usage_rmse", "preemptions_measured", "preemptions_simulated",
                "makespan_err")
        print("SIM-VS-ENGINE held-out", name, json.dumps({k: v[k] for k in keys}))
        # a gross-error guard: the error moves with this host's load (the API server's burst
        # delivery is not modelled); the targets are reported, not asserted
        assert abs(v["e2e_mean_err"]) <= 0.5, v
