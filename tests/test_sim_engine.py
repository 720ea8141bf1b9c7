"""The simulator against the real vLLM CPU engine (reduced size).

(a) Forced lengths (tiny-random never emits EOS, so every reply is exactly max_tokens) in
batch mode on a cache small enough to preempt: the simulated preemption and step counts
equal the engine's (``vllm:num_preemptions``, the count of ``vllm:iteration_tokens_total``)
within 2 %.
(b) Calibrate on one arm (concurrency 4, no preemption), validate on the held-out
preempting batch arm; the errors are printed (the issue's targets are asserted loosely here
because a 2-core machine shared by other jobs makes the CPU engine's step time noisy).
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
from reasonperf.run import execute_run
from tests.conftest import run_cli

pytestmark = pytest.mark.engine

BLOCKS, BLOCK = 16, 128  # 2,048 tokens of KV for 16 requests of ~150 + 300 tokens
OUT = 300
SETTINGS = ["--kv-blocks", str(BLOCKS), "--block-size", str(BLOCK),
            "--max-num-seqs", "128", "--max-num-batched-tokens", "2048"]  # CPU API defaults


@pytest.fixture(scope="module")
def small_kv_engine(engine_test_models: dict[str, Path],
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchedEngine]:
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed")
    spec = EngineSpec(kind="vllm", model=str(engine_test_models["tiny-random"]),
                      max_model_len=1024, num_gpu_blocks_override=BLOCKS,
                      enable_prefix_caching=False)
    engine = make_engine(spec)
    assert isinstance(engine, LaunchedEngine)
    engine.start(tmp_path_factory.mktemp("sim-engine"))
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


def _run(tmp_path: Path, engine: LaunchedEngine, name: str, arrival: dict) -> Path:
    spec = load_run_spec({
        "name": name, "out": str(tmp_path),
        "engine": {"kind": "external", "url": engine.base_url,
                   "metrics_url": engine.metrics_url, "model": engine.served_model},
        "workload": {"name": "procedural", "limit": 16, "options": {"levels": [1, 3]}},
        "arrival": arrival, "sampling": {"max_tokens": OUT}, "sample_interval_s": 0.2,
        "grade": False,
    })
    return execute_run(spec).run_dir


def test_simulator_matches_the_real_engine(tmp_path: Path,
                                           small_kv_engine: LaunchedEngine) -> None:
    train = _run(tmp_path, small_kv_engine, "train", {"name": "concurrency", "concurrency": 4})
    before = _counters(small_kv_engine.metrics_url)
    held_out = _run(tmp_path, small_kv_engine, "held-out", {"name": "batch", "batch_size": 16})
    after = _counters(small_kv_engine.metrics_url)
    engine_steps = after["steps"] - before["steps"]
    engine_pre = after["preemptions"] - before["preemptions"]

    cal = tmp_path / "cal.json"
    proc = run_cli("calibrate", str(train), "-o", str(cal), *SETTINGS)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("validate-sim", str(held_out), "--calibration", str(cal),
                   "--out", str(tmp_path / "val"), *SETTINGS)
    assert proc.returncode == 0, proc.stderr
    v = json.loads((tmp_path / "val" / "validation.json").read_text())
    report = {"engine_steps": engine_steps, "sim_steps": v["steps_simulated"],
              "engine_preemptions": engine_pre, "sim_preemptions": v["preemptions_simulated"],
              **{k: v[k] for k in ("e2e_mean_err", "e2e_median_ape", "ttft_mean_err",
                                   "e2e_mape", "kv_usage_rmse", "preemptions_err",
                                   "makespan_err")}}
    print("SIM-VS-ENGINE", json.dumps(report))
    assert engine_pre > 0, "the cache is not small enough to preempt"
    # (a) forced lengths in batch mode: the schedule itself
    assert v["preemptions_simulated"] == pytest.approx(engine_pre, rel=0.02)
    assert v["steps_simulated"] == pytest.approx(engine_steps, rel=0.02)
    # (b) held-out arm: timing (loose; the measured numbers go in the report)
    assert abs(v["e2e_mean_err"]) <= 0.5
