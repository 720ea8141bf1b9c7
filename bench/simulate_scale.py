"""Simulator speed: the event-driven core at reasoning scale, and against the reference.

1. 100,000 requests, lognormal outputs (median 8,000 tokens, ~1e9 in all), Poisson
   0.5 req/s, max_num_seqs 256, 8192-token budget, 16-token blocks, KV ample (6.4 M
   tokens): wall time of the fast core (target < 3 s on one core).
2. The same workload on a 1.9 M-token cache: a preemption-heavy case.
3. A smaller case run by both the fast core and the one-step-per-event reference
   (tests/sim_reference.py), side by side: their wall times and the ratio, and a check
   that they agree.

    PYTHONPATH=src .venv/bin/python bench/simulate_scale.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from reasonperf.sim.core import simulate
from reasonperf.sim.model import EngineConfig, SimRequest
from reasonperf.sim.steptime import LinearStepTime

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.sim_reference import reference_simulate  # noqa: E402

# Qwen2.5-7B on an H100, roughly: weights + overhead per step, 56 KiB of KV per token
MODEL = LinearStepTime(c_step=6.7e-3, c_seq=4.4e-6, c_decode=0.0, c_kv=3.3e-8,
                       c_prefill=1.0e-5, c_attn=1e-10)


def workload(n: int, median_out: float, rate: float, seed: int) -> list[SimRequest]:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    out = np.maximum(1, rng.lognormal(np.log(median_out), 0.6, n)).astype(int)
    out = np.minimum(out, 32_768)
    prompt = np.maximum(1, rng.lognormal(np.log(200), 0.5, n)).astype(int)
    reasoning = (out * rng.uniform(0.7, 0.98, n)).astype(int)
    return [SimRequest(float(a), int(p), int(o), int(r))
            for a, p, o, r in zip(arrivals, prompt, out, reasoning, strict=True)]


def timed(fn):  # type: ignore[no-untyped-def]
    """Wall time; on a shared machine compare with the CPU time printed beside it."""
    t0, c0 = time.perf_counter(), time.process_time()
    res = fn()
    timed.cpu = time.process_time() - c0  # type: ignore[attr-defined]
    return res, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10k requests instead of 100k")
    args = ap.parse_args()
    n = 10_000 if args.quick else 100_000
    reqs = workload(n, 8000, 0.5, seed=1)
    tokens = sum(r.output_tokens for r in reqs)
    print(f"workload: {n} requests, {tokens / 1e6:.0f} M output tokens, Poisson 0.5 req/s")
    for label, kv_tokens in (("KV ample (6.4 M tokens)", 6_400_000),
                             ("preemption-heavy (1.9 M tokens)", 1_900_000)):
        cfg = EngineConfig(kv_blocks=kv_tokens // 16, block_size=16, max_num_seqs=256,
                           max_num_batched_tokens=8192)
        res, wall = timed(lambda cfg=cfg: simulate(reqs, cfg, MODEL))
        print(f"{label:34s} steps {res.steps:>10,d}  preemptions {res.total_preemptions:>8,d}  "
              f"simulated {res.makespan_s / 3600:6.1f} h  wall {wall:6.2f} s "
              f"(CPU {timed.cpu:5.2f} s)  "
              f"({res.makespan_s / wall:,.0f}x real time)")
    # side by side with the reference
    small = workload(400 if args.quick else 1500, 800, 2.0, seed=2)
    for label, kv_tokens in (("ample", 2_000_000), ("tight", 16_000)):
        cfg = EngineConfig(kv_blocks=kv_tokens // 16, block_size=16, max_num_seqs=128,
                           max_num_batched_tokens=4096)
        fast, t_fast = timed(lambda cfg=cfg: simulate(small, cfg, MODEL))
        ref, t_ref = timed(lambda cfg=cfg: reference_simulate(small, cfg, MODEL))
        same = (fast.steps == ref.steps and fast.total_preemptions == ref.total_preemptions
                and float(np.max(np.abs(fast.done_s - ref.done_s))) < 1e-9)
        print(f"reference vs fast, {len(small)} requests, KV {label:5s}: steps {ref.steps:,d}, "
              f"preemptions {ref.total_preemptions:,d}; reference {t_ref:.2f} s, "
              f"fast {t_fast:.3f} s, ratio {t_ref / t_fast:,.0f}x, identical: {same}")


if __name__ == "__main__":
    main()
