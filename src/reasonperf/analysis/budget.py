"""Token budget: what max_tokens buys (the study's budget curves), one point per run.

Runs are grouped into curves by everything else in their spec being equal (the run's
name, output folder, seed, timeouts and similar bookkeeping do not split a curve); each
curve is labelled by the settings that tell it apart from the others.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from reasonperf.analysis import stats_util as su
from reasonperf.analysis import thinking_budget as tb
from reasonperf.analysis.base import ANALYSES, AnalysisResult, Figure, RunData, Series, Table
from reasonperf.grading.stats import avg_at_n
from reasonperf.metrics.request import request_metrics

TITLE = "Token budget (max_tokens) curves"
BUDGET_KEY = "sampling.max_tokens"
# spec fields that do not change what is measured, so they do not split a curve
BOOKKEEPING = frozenset({
    "name", "out", "seed", "timeout_s", "sample_interval_s", "store_text", "grade", "slo",
    "continuous_usage", "engine.port", "engine.host", "engine.startup_timeout_s",
    "engine.api_key_env", BUDGET_KEY,
})
METRICS = [  # key, label, figure id
    ("accuracy", "accuracy (avg@n)", "budget-accuracy"),
    ("truncation_rate", "truncation rate", "budget-truncation"),
    ("e2e_p50", "E2E p50 (s)", "budget-e2e"),
    ("ttfvt_p50", "TTFVT p50 (s)", "budget-ttfvt"),
    ("output_tps", "output tokens/s", "budget-throughput"),
]


def max_tokens_of(run: RunData) -> int | None:
    """spec.sampling.max_tokens, else the most common max_tokens the requests asked for."""
    value = (su.run_spec(run.info).get("sampling") or {}).get("max_tokens")
    if value is not None:
        return int(value)
    asked = su.finite(su.num(run.requests, "max_tokens"))
    if len(asked) == 0:
        return None
    return int(Counter(asked.tolist()).most_common(1)[0][0])


def run_point(run: RunData) -> dict[str, Any]:
    """The budget curve's numbers for one run."""
    ok = su.ok_rows(run.requests)
    m = request_metrics(ok)
    acc = avg_at_n(su.graded_rows(run.requests))
    return {
        "run": run.label,
        "max_tokens": max_tokens_of(run),
        "accuracy": acc["avg"],
        "accuracy_se": acc["se"],
        "truncation_rate": su.mean(su.truncated_flags(ok)),
        "e2e_p50": su.quantile(m["e2e"], 0.5),
        "ttfvt_p50": su.quantile(m["ttfvt"], 0.5),
        "output_tps": su.output_tps(ok),
        "requests": ok.num_rows,
    }


def curve_keys(runs: list[RunData], ignore: frozenset[str] = frozenset()) -> list[str]:
    """One label per run: the non-bookkeeping spec settings that differ across runs
    (all runs with the same label form one curve); ``ignore``: more keys that do not split."""
    flat = [{k: v for k, v in su.flatten(su.run_spec(r.info)).items()
             if k not in BOOKKEEPING and k not in ignore} for r in runs]
    keys = sorted({k for f in flat for k in f})
    differing = [k for k in keys
                 if len({orjson.dumps(f.get(k), option=orjson.OPT_SORT_KEYS) for f in flat}) > 1]
    if not differing:
        return ["all runs"] * len(runs)
    return [", ".join(f"{k}={f.get(k)}" for k in differing) for f in flat]


def analyze_budget(runs: list[RunData]) -> AnalysisResult:
    if tb.differ_in_thinking_budget(runs):  # a thinking-budget sweep: curves keyed by it
        points = [tb.run_point(r, run_point(r)) for r in runs]
        return tb.analyze_thinking_budget(points, curve_keys(runs, tb.SPEC_KEYS))
    points = [run_point(r) for r in runs]
    labels = curve_keys(runs)
    usable = [(p, lab) for p, lab in zip(points, labels, strict=True)
              if p["max_tokens"] is not None]
    budgets = {p["max_tokens"] for p, _ in usable}
    if len(budgets) < 2:
        return AnalysisResult(name="budget", title=TITLE,
                              skipped="needs runs with at least two different max_tokens")
    curves: dict[str, list[dict[str, Any]]] = {}
    for p, lab in sorted(usable, key=lambda pl: (pl[1], pl[0]["max_tokens"])):
        p["curve"] = lab
        curves.setdefault(lab, []).append(p)
    figures = []
    for key, label, fig_id in METRICS:
        series = []
        for name, pts in curves.items():
            extra = ({"y_err": [p["accuracy_se"] or 0.0 for p in pts]}
                     if key == "accuracy" else {})
            series.append(Series(name, [p["max_tokens"] for p in pts],
                                 [p[key] for p in pts], extra=extra))
        if any(v is not None for s in series for v in s.y):
            figures.append(Figure(fig_id, f"{label} against max_tokens", "line", "max_tokens",
                                  label, series))
    columns = ["curve", "run", "max_tokens", "accuracy", "accuracy SE", "truncation rate",
               "E2E p50 (s)", "TTFVT p50 (s)", "output tok/s"]
    rows = [[p["curve"], p["run"], p["max_tokens"], p["accuracy"], p["accuracy_se"],
             p["truncation_rate"], p["e2e_p50"], p["ttfvt_p50"], p["output_tps"]]
            for pts in curves.values() for p in pts]
    return AnalysisResult(
        name="budget", title=TITLE,
        numbers={"curves": curves, "saturation": {c: saturation(p) for c, p in curves.items()}},
        tables=[Table("One point per run", columns, rows)],
        figures=figures,
        findings=_all_findings(curves),
    )


def _all_findings(curves: dict[str, list[dict[str, Any]]]) -> list[str]:
    out = [f for name, pts in curves.items() for f in _findings(name, pts, len(curves))]
    if all(len(pts) < 2 for pts in curves.values()):
        out.append("No two runs differ in max_tokens alone (their other settings differ too), "
                   "so each curve has a single point.")
    return out


def saturation(points: list[dict[str, Any]]) -> int | None:
    """The smallest max_tokens whose accuracy is within one standard error of the best
    (where the curve stops paying for more tokens); None without accuracy."""
    graded = [p for p in points if p["accuracy"] is not None]
    if not graded:
        return None
    best = max(graded, key=lambda p: p["accuracy"])
    margin = best["accuracy_se"] or 0.0
    return min(p["max_tokens"] for p in graded if p["accuracy"] >= best["accuracy"] - margin)


def _findings(name: str, pts: list[dict[str, Any]], n_curves: int) -> list[str]:
    if len(pts) < 2:
        return []
    lo, hi = pts[0], pts[-1]
    prefix = f"{name}: " if n_curves > 1 else ""
    out = []
    if lo["accuracy"] is not None and hi["accuracy"] is not None:
        sat = saturation(pts)
        out.append(f"{prefix}accuracy goes from {100 * lo['accuracy']:.0f} % at max_tokens="
                   f"{lo['max_tokens']} to {100 * hi['accuracy']:.0f} % at {hi['max_tokens']}; "
                   f"it is within one standard error of its best from max_tokens={sat}.")
    if lo["truncation_rate"] is not None and hi["truncation_rate"] is not None:
        out.append(f"{prefix}truncation falls from {100 * lo['truncation_rate']:.0f} % to "
                   f"{100 * hi['truncation_rate']:.0f} %.")
    if lo["e2e_p50"] and hi["e2e_p50"] is not None:
        out.append(f"{prefix}median E2E grows {hi['e2e_p50'] / lo['e2e_p50']:.1f}x "
                   f"({lo['e2e_p50']:.2f} s to {hi['e2e_p50']:.2f} s).")
    return out


@ANALYSES.register("budget")
def budget(runs: list[RunData]) -> AnalysisResult:
    """Multi-run analysis: accuracy, truncation, latency and throughput against max_tokens."""
    return analyze_budget(runs)

