"""Memory: how full the KV cache ran, how much it moved, and what it did to scheduling.

The headline numbers come from ``metrics.server.server_summary`` so they are the same
as summary.json's server section (per-sample statistics: the sampler ticks evenly, so a
fraction of samples is a fraction of time). This module adds what needs the series
side by side: how KV usage lines up with running / waiting requests, and the figures.
"""

from __future__ import annotations

import numpy as np

from reasonperf.analysis import stats_util as su
from reasonperf.analysis.base import ANALYSES, AnalysisResult, Figure, RunData, Series
from reasonperf.metrics.server import KV_HIGH_USAGE, counter_increase, server_summary
from reasonperf.telemetry import names

TITLE = "KV-cache memory over time"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f} %"


def _cumulative_increase(values: np.ndarray) -> np.ndarray:
    """A counter's running increase from its first sample, counting through resets."""
    if len(values) == 0:
        return values
    steps = np.diff(values)
    steps = np.where(steps < 0, values[1:], steps)  # after a reset the new value is the step
    return np.concatenate(([0.0], np.cumsum(steps)))


def analyze_memory(run: RunData) -> AnalysisResult:
    t_kv, kv = su.series(run.timeline, names.KV_CACHE_USAGE)
    if len(kv) == 0:
        return AnalysisResult(
            name="memory", title=TITLE,
            skipped="no kv_cache_usage samples in the timeline (the engine exposed no "
                    "/metrics, or telemetry was off)",
        )
    t_run, running = su.series(run.timeline, names.REQUESTS_RUNNING)
    t_wait, waiting = su.series(run.timeline, names.REQUESTS_WAITING)
    t_pre, preempt = su.series(run.timeline, names.PREEMPTIONS_TOTAL)

    server = server_summary(run.timeline, None)
    # running / waiting as they stood at each KV sample (step alignment: the scrape of one
    # tick writes every metric with the same t_s, and a late one still lines up)
    run_at = su.step_at(t_run, running, t_kv)
    wait_at = su.step_at(t_wait, waiting, t_kv)
    queued = np.isfinite(wait_at) & (wait_at > 0)
    numbers = {
        "samples": len(kv),
        "window_s": float(t_kv[-1] - t_kv[0]),
        "kv_mean": server["kv_cache_usage_mean"],
        "kv_p95": server["kv_cache_usage_p95"],
        "kv_max": server["kv_cache_usage_max"],
        "kv_std": server["kv_cache_usage_std"],
        "kv_mean_abs_change": server["kv_cache_usage_mean_abs_change"],
        "kv_high_threshold": KV_HIGH_USAGE,
        "kv_frac_time_high": server["kv_cache_usage_frac_high"],
        "preemptions": counter_increase(preempt),
        "running_max": server["requests_running_max"],
        "waiting_max": server["requests_waiting_max"],
        "frac_time_waiting": float(queued.mean()) if np.isfinite(wait_at).any() else None,
        "kv_mean_while_waiting": su.mean(kv[queued]) if queued.any() else None,
        "corr_kv_running": su.correlation(kv, run_at),
        "corr_kv_waiting": su.correlation(kv, wait_at),
    }
    return AnalysisResult(
        name="memory",
        title=TITLE,
        numbers=numbers,
        figures=_figures(t_kv, kv, (t_run, running), (t_wait, waiting), (t_pre, preempt)),
        findings=_findings(numbers),
    )


def _figures(t_kv: np.ndarray, kv: np.ndarray, *others: tuple[np.ndarray, np.ndarray]
             ) -> list[Figure]:
    x, y = su.decimate(t_kv, kv)
    kv_fig = Figure(
        id="memory-kv", title="KV-cache usage", kind="line", x_label="time since start (s)",
        y_label="KV-cache usage (fraction)", series=[Series("kv_cache_usage", su.tolist(x),
                                                            su.tolist(y))],
        notes=f"high-usage level: {_pct(KV_HIGH_USAGE)}; long series are downsampled keeping "
              "each bucket's min and max",
    )
    queue: list[Series] = []
    labels = ("requests_running", "requests_waiting", "preemptions (cumulative)")
    for label, (t, v) in zip(labels, others, strict=True):
        if len(v) == 0:
            continue
        if label.startswith("preemptions"):
            v = _cumulative_increase(v)
        xs, ys = su.decimate(t, v)
        queue.append(Series(label, su.tolist(xs), su.tolist(ys)))
    figs = [kv_fig]
    if queue:
        figs.append(Figure(
            id="memory-queue", title="Requests running and waiting", kind="step",
            x_label="time since start (s)", y_label="requests", series=queue,
        ))
    return figs


def _findings(n: dict) -> list[str]:
    out = [
        f"KV-cache usage averaged {_pct(n['kv_mean'])} (p95 {_pct(n['kv_p95'])}, max "
        f"{_pct(n['kv_max'])}) and was above {_pct(KV_HIGH_USAGE)} for "
        f"{_pct(n['kv_frac_time_high'])} of the time."
    ]
    if n["kv_mean_abs_change"] is not None:
        out.append(
            f"It fluctuated by {100 * n['kv_mean_abs_change']:.1f} percentage points between "
            f"samples on average (std {100 * (n['kv_std'] or 0):.1f} points)."
        )
    pre = n["preemptions"]
    if pre is not None:
        out.append("No request was preempted." if pre == 0 else
                   f"The engine preempted requests {pre:.0f} times (KV cache full).")
    r = n["corr_kv_running"]
    if r is not None:
        strength = "closely" if abs(r) >= 0.7 else "loosely" if abs(r) >= 0.3 else "hardly"
        out.append(f"KV usage {strength} tracks the number of running requests (r = {r:.2f}).")
    if n["frac_time_waiting"]:
        out.append(
            f"Requests waited in the engine's queue {_pct(n['frac_time_waiting'])} of the time "
            f"(up to {n['waiting_max']:.0f} at once), while KV usage averaged "
            f"{_pct(n['kv_mean_while_waiting'])}."
        )
    return out


@ANALYSES.register("memory")
def memory(runs: list[RunData]) -> AnalysisResult:
    """Single-run analysis: KV-cache usage, fluctuation, and its link to the queue."""
    (run,) = runs
    return analyze_memory(run)
