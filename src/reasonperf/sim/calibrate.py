"""Fit the step-time model from stored runs (``reasonperf calibrate RUN... -o CAL.json``).

Stage 1, robust NNLS on chunk gaps. The gap between two deliveries of one request's
tokens, the later carrying k tokens, spans k engine steps. Chunks read at the same
instant are merged (an API server under load delivers tokens in bursts, so k can be
large). Each gap is joined with the batch it ran in, rebuilt from the run's own request
records and averaged over the gap: B = requests between their first token and their end,
sum of contexts = sum of (prompt + tokens so far, interpolated over each decode), and the
prompt tokens of the requests whose first token fell in the gap (their prefill ran
there). Fit ``gap/k = c_step + c_seq*B + c_kv*sum_ctx + c_prefill*prefill_tokens/k`` by
robust non-negative least squares (scipy ``least_squares``: soft-L1 loss, bounds >= 0,
weights sqrt(k)).

Stage 2, replay. The calibration runs are replayed through the simulator over a small
grid of prefill multipliers, keeping the one with the lowest median relative E2E plus TTFT
error (BLIS's loss, on the training arm only): prefill is what the gaps see least (it
hides behind the first token, and re-prefills after preemptions are invisible).
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


def gap_samples(requests: pa.Table, chunks: pa.Table) -> np.ndarray:
    """Rows (gap_s, k, mean B, mean sum of contexts, prefill tokens) of chunk gaps."""
    rows = [r for r in usable_rows(requests) if r.get("first_token_s") is not None]
    if not rows:
        return np.zeros((0, 5))
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
        return np.zeros((0, 5))
    g = np.array(gaps)
    if len(g) > MAX_SAMPLES:
        g = g[np.linspace(0, len(g) - 1, MAX_SAMPLES).astype(int)]
    t0, t1, k = g[:, 0], g[:, 1], g[:, 2]
    B = np.zeros(len(g))
    S = np.zeros(len(g))
    points = (0.1, 0.3, 0.5, 0.7, 0.9)
    for f in points:  # average the batch over the gap
        tm = t0 + f * (t1 - t0)
        active = (first[None, :] <= tm[:, None]) & (tm[:, None] < done[None, :])
        frac = np.clip((tm[:, None] - first[None, :])
                       / np.maximum(done - first, 1e-12)[None, :], 0, 1)
        ctx = prompt[None, :] + 1 + (comp[None, :] - 1) * frac
        B += active.sum(axis=1) / len(points)
        S += (active * ctx).sum(axis=1) / len(points)
    # prompt tokens of the requests whose first token (end of prefill) fell in the gap
    order = np.argsort(first)
    cum = np.concatenate([[0.0], np.cumsum(prompt[order])])
    slack = 1e-3  # one step's tokens reach the client within about a millisecond
    lo = np.searchsorted(first[order], t0 + slack, "right")
    hi = np.searchsorted(first[order], t1 + slack, "right")
    return np.column_stack([t1 - t0, k, B, S, cum[hi] - cum[lo]])


def fit_gaps(samples: np.ndarray) -> tuple[LinearStepTime, dict[str, Any]]:
    """Stage 1: robust NNLS of the per-step time on the gap features."""
    from scipy.optimize import least_squares

    if len(samples) < 4:
        raise UsageError("too few chunk gaps to calibrate (need >= 4); use a run with "
                         "streamed replies of more than a few tokens")
    gap, k, B, S, pf = samples.T
    y = gap / k
    X = np.column_stack([np.ones_like(B), B, S, pf / k])
    scale = np.where(X.max(axis=0) > 0, X.max(axis=0), 1.0)
    Xs = X / scale
    sw = np.sqrt(k / k.mean())
    f_scale = float(np.median(y)) * 0.1 or 1e-6
    x0 = np.full(X.shape[1], float(np.median(y)) / X.shape[1])

    def resid(x: np.ndarray) -> np.ndarray:
        return (Xs @ x - y) * sw

    res = least_squares(resid, x0, bounds=(0, np.inf), loss="soft_l1", f_scale=f_scale)
    coef = res.x / scale
    model = LinearStepTime(c_step=float(coef[0]), c_seq=float(coef[1]), c_kv=float(coef[2]),
                           c_prefill=float(coef[3]))
    rel = np.abs(X @ coef - y) / y
    return model, {"gap_samples": int(len(y)), "tokens_per_gap_median": float(np.median(k)),
                   "itl_median_s": float(np.median(y)), "itl_fit_mape": float(np.mean(rel)),
                   "itl_fit_median_ape": float(np.median(rel))}


def replay_error(run: RunData, settings: EngineSettings, model: LinearStepTime) -> float:
    """Median relative E2E error plus median relative TTFT error of a replay."""
    wl = replay(run.requests)
    res = simulate(wl.requests, config_from(settings), model)
    arrival = np.array([r.arrival_s for r in wl.requests])
    total = 0.0
    for key, sim in (("done_s", res.done_s), ("first_token_s", res.first_token_s)):
        meas = np.array([r[key] - r["sent_s"] for r in wl.rows], dtype=float)
        ok = meas > 0
        if ok.any():
            total += float(np.median(np.abs(sim[ok] - arrival[ok] - meas[ok]) / meas[ok]))
    return total


def config_from(settings: EngineSettings, **over: Any) -> EngineConfig:
    base = {"kv_blocks": settings.kv_blocks, "block_size": settings.block_size,
            "max_num_seqs": settings.max_num_seqs,
            "max_num_batched_tokens": settings.max_num_batched_tokens}
    base.update({k: v for k, v in over.items() if v is not None})
    return EngineConfig(**base)


PREFILL_FACTORS = (1.0, 0.0, 0.25, 0.5, 0.75, 1.5, 2.0, 4.0, 8.0)


def refine(runs: list[RunData], settings: list[EngineSettings],
           model: LinearStepTime) -> tuple[LinearStepTime, float]:
    """Stage 2: the prefill coefficient with the lowest replay error. The decode terms are
    left as measured: scaling them to fit one arm's replay was seen to hurt other arms."""
    base_pf = model.c_prefill or model.c_step / 1000
    best: tuple[float, LinearStepTime] | None = None
    for pf in PREFILL_FACTORS:
        m = replace(model, c_prefill=base_pf * pf)
        err = float(np.mean([replay_error(r, s, m) for r, s in zip(runs, settings, strict=True)]))
        if best is None or err < best[0] - 1e-12:
            best = (err, m)
    assert best is not None
    return best[1], best[0]


def per_position_acceptance(rate: float, k: int) -> float:
    """alpha such that the expected accepted drafts per draft, sum(alpha^i, i=1..k)/k, equal
    the engine's accepted/draft token rate (the simulator draws leading successes)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if sum(mid**i for i in range(1, k + 1)) / k < rate:
            lo = mid
        else:
            hi = mid
    return min(lo, 0.999)


def spec_decode(run: RunData) -> dict[str, Any] | None:
    """Drafts per step and acceptance from the run's spec and engine counters, if any."""
    conf = ((run.info.get("spec") or {}).get("engine") or {}).get("speculative_config") or {}
    k = conf.get("num_speculative_tokens")
    server = (run.summary or {}).get("server") or {}
    rate = server.get("spec_decode_acceptance_rate")
    if not k or rate is None:
        return None
    return {"num_speculative_tokens": int(k), "acceptance_rate": float(rate),
            "acceptance": per_position_acceptance(float(rate), int(k))}


def calibrate(runs: list[RunData],
              overrides: dict[str, int | None] | None = None) -> dict[str, Any]:
    """The calibration document (CAL.json) from one or more measured runs."""
    if not runs:
        raise UsageError("calibrate needs at least one RUN directory")
    settings = [engine_settings(r.info, r.run_dir, overrides) for r in runs]
    samples = np.vstack([gap_samples(r.requests, r.chunks) for r in runs])
    model, fit = fit_gaps(samples)
    fit["stage1"] = model.to_dict()
    fit["replay_error_stage1"] = float(np.mean([replay_error(r, s, model)
                                                for r, s in zip(runs, settings, strict=True)]))
    model, err = refine(runs, settings, model)
    fit["replay_error"] = err
    return {
        "kind": "reasonperf-calibration",
        "version": 1,
        "engine_kind": "vllm",
        "step_time": model.to_dict(),
        "engine": settings[0].to_dict(),
        "fit": fit,
        "spec_decode": next((sd for sd in map(spec_decode, runs) if sd), None),
        "runs": [r.run_dir for r in runs],
    }
