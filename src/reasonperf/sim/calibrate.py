"""Fit the step-time model from stored runs (``reasonperf calibrate RUN... -o CAL.json``).

Stage 1, decode terms. In a decode-only period the gap between two chunks of one request
that carry k tokens is k engine steps, so ``gap / k`` samples the step time. Each sample
is joined with the batch it ran in, reconstructed from the run's own request records at
the gap's midpoint: B = requests between their first token and their end, sum of
contexts = sum of (prompt + tokens generated so far), the latter interpolated linearly
over each request's decode. Chunks read at the same instant are merged; gaps in which
any request got its first token (a prefill step ran there) are left out. Fit ``itl = c_step + c_seq*B + c_kv*sum_ctx`` by robust non-negative
least squares (scipy ``least_squares``, soft-L1 loss, bounds >= 0).

Stage 2, prefill. Prefill chunks are not visible in the chunk gaps, so ``c_prefill`` is
chosen by replaying the calibration runs through the simulator and minimizing the median
relative TTFT error over a log grid (the simulator is fast enough to do this).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from reasonperf.analysis.base import RunData
from reasonperf.errors import UsageError
from reasonperf.sim.core import simulate
from reasonperf.sim.model import EngineConfig
from reasonperf.sim.runinfo import EngineSettings, engine_settings
from reasonperf.sim.steptime import LinearStepTime
from reasonperf.sim.workload import replay, usable_rows

MAX_SAMPLES = 20_000


def decode_samples(requests: pa.Table, chunks: pa.Table) -> np.ndarray:
    """Rows (itl_s, B, sum_ctx, weight=k) of decode-only chunk gaps."""
    rows = usable_rows(requests)
    rows = [r for r in rows if r.get("first_token_s") is not None]
    if not rows:
        return np.zeros((0, 4))
    first = np.array([r["first_token_s"] for r in rows])
    done = np.array([r["done_s"] for r in rows])
    prompt = np.array([r["prompt_tokens"] for r in rows], dtype=float)
    comp = np.array([r["completion_tokens"] for r in rows], dtype=float)
    ids = {r["request_id"]: i for i, r in enumerate(rows)}
    per: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for rid, t, n in zip(chunks.column("request_id").to_pylist(), chunks.column("t_s").to_pylist(),
                         chunks.column("n_tokens").to_pylist(), strict=True):
        i = ids.get(rid)
        if i is not None and t is not None and n:
            per[i].append((t, int(n)))
    gaps = []
    for evs in per.values():
        evs.sort()
        merged: list[list[float]] = []  # chunks read at the same instant are one delivery
        for t, n in evs:
            if merged and t <= merged[-1][0]:
                merged[-1][1] += n
            else:
                merged.append([t, n])
        for (ta, _), (tb, n_tok) in zip(merged, merged[1:], strict=False):
            gaps.append((ta, tb, n_tok))  # the later delivery's n tokens: n steps
    if not gaps:
        return np.zeros((0, 4))
    g = np.array(gaps)
    # leave out gaps in which some request got its first token: a prefill step ran there
    firsts = np.sort(first)
    slack = 1e-3  # the client reads one step's tokens for all requests within ~1 ms
    prefills = (np.searchsorted(firsts, g[:, 1] + slack, "right")
                - np.searchsorted(firsts, g[:, 0] + slack, "right"))
    g = g[prefills <= 0]
    if len(g) > MAX_SAMPLES:
        g = g[np.linspace(0, len(g) - 1, MAX_SAMPLES).astype(int)]
    t0, t1, k = g[:, 0], g[:, 1], g[:, 2]
    tm = (t0 + t1) / 2
    active = (first[None, :] <= tm[:, None]) & (tm[:, None] < done[None, :])
    frac = np.clip((tm[:, None] - first[None, :]) / np.maximum(done - first, 1e-12)[None, :], 0, 1)
    ctx = prompt[None, :] + 1 + (comp[None, :] - 1) * frac
    B = active.sum(axis=1)
    S = (active * ctx).sum(axis=1)
    return np.column_stack([(t1 - t0) / k, B, S, k])


def fit_decode(samples: np.ndarray) -> tuple[LinearStepTime, dict[str, Any]]:
    from scipy.optimize import least_squares

    if len(samples) < 3:
        raise UsageError("too few decode-only chunk gaps to calibrate (need >= 3); use a run "
                         "with longer outputs or more requests")
    y, B, S, w = samples.T
    X = np.column_stack([np.ones_like(B), B, S])
    scale = np.where(X.max(axis=0) > 0, X.max(axis=0), 1.0)
    Xs = X / scale
    sw = np.sqrt(w / w.mean())
    f_scale = float(np.median(y)) * 0.1 or 1e-6
    x0 = np.full(3, float(np.median(y)) / 3)

    def resid(x: np.ndarray) -> np.ndarray:
        return (Xs @ x - y) * sw

    res = least_squares(resid, x0, bounds=(0, np.inf), loss="soft_l1", f_scale=f_scale)
    coef = res.x / scale
    model = LinearStepTime(c_step=float(coef[0]), c_seq=float(coef[1]), c_kv=float(coef[2]))
    pred = X @ coef
    rel = np.abs(pred - y) / y
    return model, {"decode_samples": int(len(y)), "itl_median_s": float(np.median(y)),
                   "itl_fit_mape": float(np.mean(rel)), "itl_fit_median_ape": float(np.median(rel))}


def _ttft_error(run: RunData, settings: EngineSettings, model: LinearStepTime) -> float:
    wl = replay(run.requests)
    cfg = config_from(settings)
    res = simulate(wl.requests, cfg, model)
    meas = np.array([r["first_token_s"] - r["sent_s"] for r in wl.rows], dtype=float)
    sim = res.first_token_s - np.array([r.arrival_s for r in wl.requests])
    ok = meas > 0
    return float(np.median(np.abs(sim[ok] - meas[ok]) / meas[ok])) if ok.any() else 0.0


def config_from(settings: EngineSettings, **over: Any) -> EngineConfig:
    base = {"kv_blocks": settings.kv_blocks, "block_size": settings.block_size,
            "max_num_seqs": settings.max_num_seqs,
            "max_num_batched_tokens": settings.max_num_batched_tokens}
    base.update({k: v for k, v in over.items() if v is not None})
    return EngineConfig(**base)


def fit_prefill(runs: list[RunData], settings: list[EngineSettings],
                model: LinearStepTime) -> tuple[LinearStepTime, float]:
    """c_prefill minimizing the median relative TTFT error of the replayed runs."""

    def err(c: float) -> float:
        m = replace(model, c_prefill=c)
        return float(np.mean([_ttft_error(r, s, m) for r, s in zip(runs, settings, strict=True)]))

    base = max(model.c_step, 1e-6)
    grid = [0.0] + [base * f for f in np.logspace(-5, 0, 16)]
    errs = [err(c) for c in grid]
    best = int(np.argmin(errs))
    lo = grid[max(best - 1, 0)]
    hi = grid[min(best + 1, len(grid) - 1)]
    for c in np.linspace(lo, hi, 9):
        e = err(float(c))
        if e < errs[best]:
            errs[best], grid[best] = e, float(c)
    c = grid[best]
    return replace(model, c_prefill=c), errs[best]


def calibrate(runs: list[RunData],
              overrides: dict[str, int | None] | None = None) -> dict[str, Any]:
    """The calibration document (CAL.json) from one or more measured runs."""
    if not runs:
        raise UsageError("calibrate needs at least one RUN directory")
    settings = [engine_settings(r.info, r.run_dir, overrides) for r in runs]
    samples = np.vstack([decode_samples(r.requests, r.chunks) for r in runs])
    model, fit = fit_decode(samples)
    model, ttft_err = fit_prefill(runs, settings, model)
    fit["ttft_median_ape_after_prefill_fit"] = ttft_err
    return {
        "kind": "reasonperf-calibration",
        "version": 1,
        "engine_kind": "vllm",
        "step_time": model.to_dict(),
        "engine": settings[0].to_dict(),
        "fit": fit,
        "runs": [r.run_dir for r in runs],
    }
