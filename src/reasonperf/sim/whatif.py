"""What the CLI does: build the engine and the requests from a calibration and a workload
run, simulate, write the run directory; sweep the rate; validate against a measured run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reasonperf.analysis.loader import load_run
from reasonperf.errors import UsageError
from reasonperf.sim import sglang as _sglang  # noqa: F401  (registers --policy sglang)
from reasonperf.sim.model import EngineConfig, SimResult
from reasonperf.sim.output import write_sim_run
from reasonperf.sim.policies import POLICIES
from reasonperf.sim.steptime import LinearStepTime, step_model_from_dict
from reasonperf.sim.validate import compare
from reasonperf.sim.workload import Workload, replay, sample
from reasonperf.store import RunStore
from reasonperf.workload.arrivals import make_arrival


@dataclass
class Setup:
    cal: dict[str, Any]
    workload_dir: Path
    arrival: str = "replay"
    rate: float | None = None
    cv: float | None = None
    num_requests: int | None = None
    max_num_seqs: int | None = None
    max_num_batched_tokens: int | None = None
    kv_blocks: int | None = None
    block_size: int | None = None
    kv_dtype: str = "auto"
    kv_read_factor: float = 1.0
    spec_k: int = 0
    acceptance: float = 0.0
    seed: int = 0
    sample_interval: float | None = 0.5
    slo: dict[str, float] = field(default_factory=dict)
    policy: str = "vllm-v1"


def prior_calibration(gpu: str, model_config: Path, *, tp: int = 1,
                      kv_dtype: str = "auto") -> dict[str, Any]:
    """A calibration document from datasheet numbers alone (no measured run): the roofline
    step-time prior and BLIS's KV-capacity formula, vLLM's GPU defaults."""
    from reasonperf.sim.profiles import (
        ModelShape,
        hardware,
        kv_capacity_tokens,
        roofline_prior,
    )

    hw, shape = hardware(gpu), ModelShape.from_config(model_config)
    kv_tokens = kv_capacity_tokens(hw, shape, tp=tp)  # in the auto dtype; fp8 doubles later
    if kv_tokens < 16 * 2:
        raise UsageError(f"--model-config {model_config}: the weights leave no KV cache on "
                         f"{tp} x {gpu}; raise --tp")
    big = hw.memory_gb >= 70 and not gpu.lower().startswith("a100")
    return {
        "kind": "reasonperf-calibration",
        "step_time": roofline_prior(hw, shape, tp=tp, kv_dtype=kv_dtype).to_dict(),
        "engine": {"kv_tokens": kv_tokens, "kv_blocks": kv_tokens // 16 - 1, "block_size": 16,
                   "max_num_seqs": 1024 if big else 256, "max_num_batched_tokens": 8192,
                   "kv_source": "roofline prior (BLIS capacity formula)", "platform": "gpu"},
        "fit": None,
        "runs": [],
        "prior": {"gpu": gpu, "model_config": str(model_config), "tp": tp},
    }


def engine_config(setup: Setup) -> EngineConfig:
    eng = setup.cal.get("engine") or {}
    # --kv-blocks counts like vLLM's num_gpu_blocks; one of them is the null block
    blocks = setup.kv_blocks - 1 if setup.kv_blocks else eng.get("kv_blocks")
    if not blocks or blocks < 1:
        raise UsageError("the KV cache size is unknown or too small; pass --kv-blocks N (>= 2)")
    if setup.kv_dtype not in ("auto", "fp8", "fp8_e4m3", "fp8_e5m2"):
        raise UsageError(f"--kv-dtype {setup.kv_dtype!r}: choose auto or fp8")
    if setup.kv_dtype.startswith("fp8") and setup.kv_blocks is None:
        blocks = 2 * (int(blocks) + 1) - 1  # half the bytes per token: twice the blocks
    acceptance = setup.acceptance
    measured = setup.cal.get("spec_decode") or {}
    if setup.spec_k and not acceptance and measured.get("acceptance_rate") is not None:
        from reasonperf.sim.calibrate import per_position_acceptance

        # the engine's measured accepted/draft rate, for this k
        acceptance = per_position_acceptance(measured["acceptance_rate"], setup.spec_k)
    try:
        cfg = EngineConfig(
            kv_blocks=int(blocks),
            block_size=int(setup.block_size or eng.get("block_size") or 16),
            max_num_seqs=int(setup.max_num_seqs or eng.get("max_num_seqs") or 256),
            max_num_batched_tokens=int(setup.max_num_batched_tokens
                                       or eng.get("max_num_batched_tokens") or 8192),
            num_speculative_tokens=setup.spec_k,
            acceptance=acceptance,
            seed=setup.seed,
        )
        cfg.validate()
    except ValueError as err:
        raise UsageError(f"engine settings: {err}") from None
    return cfg


def step_model(setup: Setup) -> LinearStepTime:
    model = step_model_from_dict(setup.cal["step_time"])
    if setup.kv_read_factor != 1.0:
        if not 0 < setup.kv_read_factor <= 1.0:
            raise UsageError("--kv-read-factor must be in (0, 1]")
        model = model.scaled(setup.kv_read_factor)
    return model


def build_workload(setup: Setup, rate: float | None = None) -> Workload:
    run = load_run(setup.workload_dir)
    if setup.arrival == "replay":
        if rate is not None or setup.rate is not None:
            raise UsageError("--rate does not apply to --arrival replay; pick poisson, gamma or constant")
        return replay(run.requests)
    n = setup.num_requests or len(replay(run.requests).requests)
    if setup.arrival == "batch":
        offsets = [0.0] * n
    else:
        arr = make_arrival(setup.arrival, n, rate=rate if rate is not None else setup.rate,
                           cv=setup.cv, seed=setup.seed)
        if arr.offsets is None:
            raise UsageError(f"--arrival {setup.arrival} is closed-loop; the simulator takes "
                             "replay, batch (all at t=0), poisson, gamma, constant or trace")
        offsets = list(arr.offsets)
    return sample(run.requests, offsets, seed=setup.seed)


def _simulate(setup: Setup, wl: Workload) -> SimResult:
    sim = POLICIES.get(setup.policy)
    try:
        return sim(wl.requests, engine_config(setup), step_model(setup), setup.sample_interval)
    except ValueError as err:
        raise UsageError(str(err)) from None


def _info(setup: Setup, cfg: EngineConfig, res: SimResult, wall: float, name: str,
          source: dict[str, Any]) -> dict[str, Any]:
    spec = dict(source.get("spec") or {})
    spec["arrival"] = {"name": setup.arrival, "rate": setup.rate, "cv": setup.cv}
    if setup.slo:
        spec["slo"] = setup.slo
    spec["sample_interval_s"] = setup.sample_interval
    return {
        "spec": spec,
        "engine": {"kind": "simulated-vllm",
                   "served_model": (source.get("engine") or {}).get("served_model")},
        "simulation": {
            "policy": setup.policy,
            "engine": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__},
            "step_time": step_model(setup).to_dict(),
            "calibration_runs": setup.cal.get("runs"),
            "workload_run": str(setup.workload_dir),
            "steps": res.steps,
            "preemptions": res.total_preemptions,
            "wall_s": wall,
        },
        "name": name,
    }


def run_to_dir(setup: Setup, out: Path) -> tuple[RunStore, SimResult]:
    wl = build_workload(setup)
    t0 = time.perf_counter()
    res = _simulate(setup, wl)
    wall = time.perf_counter() - t0
    source = load_run(setup.workload_dir).info
    info = _info(setup, engine_config(setup), res, wall, f"simulated-{out.name}", source)
    return write_sim_run(out, out.name, wl, res, info), res


def _meets(setup: Setup, wl: Workload, res: SimResult) -> np.ndarray:
    arr = np.array([r.arrival_s for r in wl.requests])
    lat = {"ttft": res.first_token_s - arr, "ttfvt": res.first_visible_s - arr,
           "e2e": res.done_s - arr}
    ok = np.ones(len(arr), dtype=bool)
    for name, limit in setup.slo.items():
        if name not in lat:
            raise UsageError(f"--slo {name}: the simulator knows ttft, ttfvt and e2e")
        v = lat[name]
        ok &= np.isfinite(v) & (v <= limit) | (np.isnan(v) & (name == "ttfvt"))
    return ok


def sweep_rates(setup: Setup, rates: list[float]) -> tuple[list[dict[str, Any]], float | None]:
    """One simulation per rate (same seed); the knee is the highest rate whose SLO
    attainment is >= 90 % (without SLOs: whose throughput is >= 95 % of the rate)."""
    if setup.arrival == "replay":
        setup.arrival = "poisson"
    rows, knee = [], None
    for rate in rates:
        wl = build_workload(setup, rate)
        res = _simulate(setup, wl)
        arr = np.array([r.arrival_s for r in wl.requests])
        span = max(res.makespan_s - arr.min(), 1e-9)
        ok = _meets(setup, wl, res)
        row = {
            "rate": rate,
            "throughput": len(arr) / span,
            "goodput": float(ok.sum()) / span,
            "attainment": float(ok.mean()),
            "ttft_p90": float(np.nanpercentile(res.first_token_s - arr, 90)),
            "e2e_p90": float(np.nanpercentile(res.done_s - arr, 90)),
            "preemptions": res.total_preemptions,
            "peak_kv": max((s[3] for s in res.samples), default=float("nan")),
        }
        rows.append(row)
        good = row["attainment"] >= 0.9 if setup.slo else row["throughput"] >= 0.95 * rate
        if good:
            knee = rate
    return rows, knee


def validate_run(run_dir: Path, cal: dict[str, Any], out: Path,
                 overrides: dict[str, int | None] | None = None) -> dict[str, Any]:
    """Replay ``run_dir`` (same arrivals and token counts, the run's own engine settings)
    and write ``out``/validation.json and ``out``/sim (the simulated run)."""
    from reasonperf.sim.runinfo import engine_settings

    run = load_run(run_dir)
    settings = engine_settings(run.info, run.run_dir, overrides)
    interval = float((run.info.get("spec") or {}).get("sample_interval_s") or 0.5)
    setup = Setup(cal={**cal, "engine": settings.to_dict()}, workload_dir=run_dir,
                  sample_interval=interval)
    out.mkdir(parents=True, exist_ok=True)
    store, res = run_to_dir(setup, out / "sim")
    wl = replay(run.requests)
    v = compare(wl.rows, store.table("requests").to_pylist(), run.timeline,
                store.table("timeline"))
    v["engine"] = settings.to_dict()
    v["steps_simulated"] = res.steps
    RunStore(out).write_json("validation.json", v)
    return v
