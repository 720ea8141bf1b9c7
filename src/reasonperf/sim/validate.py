"""Compare a simulated replay with the measured run it replays (``reasonperf validate-sim``).

Errors are signed fractions ``(simulated - measured) / measured`` for workload-level
statistics, MAPE and Pearson r per request, RMSE for the trajectories (the simulated
series read at the measured sample times, last value carried forward) and a relative
error of the preemption count (absolute count difference when the run measured none).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from reasonperf.telemetry import names

LATENCIES = ("e2e", "ttft", "ttfvt")


def _lat(rows: list[dict[str, Any]], which: str) -> np.ndarray:
    key = {"e2e": "done_s", "ttft": "first_token_s", "ttfvt": "first_visible_s"}[which]
    return np.array([r[key] - r["sent_s"] if r.get(key) is not None else np.nan for r in rows],
                    dtype=float)


def _rel(sim: float, meas: float) -> float | None:
    if not np.isfinite(sim) or not np.isfinite(meas) or meas == 0:
        return None
    return float((sim - meas) / meas)


def _series(timeline: pa.Table, metric: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [(t, v) for t, s, m, v in zip(
        timeline.column("t_s").to_pylist(), timeline.column("source").to_pylist(),
        timeline.column("metric").to_pylist(), timeline.column("value").to_pylist(), strict=True)
        if s == names.SOURCE_ENGINE and m == metric and v is not None and np.isfinite(v)]
    rows.sort()
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


def _at(t: np.ndarray, v: np.ndarray, when: np.ndarray) -> np.ndarray:
    idx = np.searchsorted(t, when, "right") - 1
    out = np.where(idx >= 0, v[np.clip(idx, 0, None)], 0.0)
    return out


def compare(measured_rows: list[dict[str, Any]], simulated_rows: list[dict[str, Any]],
            measured_tl: pa.Table, simulated_tl: pa.Table) -> dict[str, Any]:
    """validation.json: the keys the issue names plus the full breakdown."""
    out: dict[str, Any] = {"requests": len(measured_rows)}
    for which in LATENCIES:
        m, s = _lat(measured_rows, which), _lat(simulated_rows, which)
        ok = np.isfinite(m) & np.isfinite(s) & (m > 0)
        if not ok.any():
            for k in ("mean_err", "p50_err", "p90_err", "p99_err", "mape", "median_ape",
                      "pearson_r"):
                out[f"{which}_{k}"] = None
            continue
        m, s = m[ok], s[ok]
        out[f"{which}_mean_err"] = _rel(s.mean(), m.mean())
        for q in (50, 90, 99):
            out[f"{which}_p{q}_err"] = _rel(np.percentile(s, q), np.percentile(m, q))
        ape = np.abs(s - m) / m
        out[f"{which}_mape"] = float(ape.mean())
        out[f"{which}_median_ape"] = float(np.median(ape))
        out[f"{which}_pearson_r"] = (float(np.corrcoef(s, m)[0, 1])
                                     if len(m) > 1 and m.std() > 0 and s.std() > 0 else None)
    mk = max(r["done_s"] for r in measured_rows) - min(r["sent_s"] for r in measured_rows)
    sk = max(r["done_s"] for r in simulated_rows) - min(r["sent_s"] for r in simulated_rows)
    out["makespan_err"] = _rel(sk, mk)
    start = min(r["sent_s"] for r in measured_rows)
    end = max(r["done_s"] for r in measured_rows)
    for key, metric in (("running", names.REQUESTS_RUNNING), ("waiting", names.REQUESTS_WAITING),
                        ("kv_usage", names.KV_CACHE_USAGE)):
        mt, mv = _series(measured_tl, metric)
        st, sv = _series(simulated_tl, metric)
        sel = (mt >= start) & (mt <= end)
        if not sel.any() or not len(st):
            out[f"{key}_rmse"] = None
            continue
        diff = _at(st, sv, mt[sel]) - mv[sel]
        out[f"{key}_rmse"] = float(np.sqrt(np.mean(diff**2)))
    mt, mv = _series(measured_tl, names.PREEMPTIONS_TOTAL)
    st, sv = _series(simulated_tl, names.PREEMPTIONS_TOTAL)
    meas_pre = float(mv[-1] - mv[0]) if len(mv) >= 2 else None
    sim_pre = float(sv[-1] - sv[0]) if len(sv) >= 1 else None
    out["preemptions_measured"] = meas_pre
    out["preemptions_simulated"] = sim_pre
    if meas_pre is None or sim_pre is None:
        out["preemptions_err"] = None
    elif meas_pre > 0:
        out["preemptions_err"] = (sim_pre - meas_pre) / meas_pre
    else:
        out["preemptions_err"] = sim_pre  # no preemption measured: the count itself
    return out
