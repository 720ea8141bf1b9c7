"""Difficulty: does running time adapt to how hard the problem is?

Levels come from the ``difficulty`` column (MATH levels "1".."5", procedural levels); a
row without one takes its dataset's name, so a mix of GSM8K, MATH-500 and AIME shows
dataset as difficulty. Numeric levels sort numerically; named ones follow them.

The trend is a least-squares line across levels (one point per level: the level's mean
E2E, mean reasoning tokens, avg@n) with Pearson r, fitted when there are >= 3 numeric
levels. Named levels (datasets) have no natural scale, so they get no fitted line.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pyarrow as pa

from reasonperf.analysis import stats_util as su
from reasonperf.analysis.base import ANALYSES, AnalysisResult, Figure, RunData, Series, Table
from reasonperf.grading.stats import avg_at_n
from reasonperf.metrics.request import request_metrics

TITLE = "Running time against difficulty"
MIN_TREND_LEVELS = 3


def level_labels(requests: pa.Table) -> np.ndarray:
    """Each row's difficulty level, or its dataset's name when it has none."""
    diff = su.text(requests, "difficulty", missing="")
    dataset = su.text(requests, "dataset")
    return np.where(diff == "", dataset, diff)


def group_table(requests: pa.Table, labels: np.ndarray, order: list[str], key: str = "level"
                ) -> list[dict[str, Any]]:
    """Per group (in ``order``, named under ``key``): requests, E2E, reasoning tokens, truncation, avg@n.

    Shared by the difficulty and domain analyses. Accuracy is ``grading.stats.avg_at_n``
    over the group's graded rows, so it matches summary.json's per-group accuracy.
    """
    e2e = request_metrics(requests)["e2e"]
    reasoning = su.num(requests, "reasoning_tokens")
    completion = su.num(requests, "completion_tokens")
    truncated = su.truncated_flags(requests)
    graded = np.flatnonzero(np.isfinite(su.num(requests, "correct")))
    rows_by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for label, row in zip(labels[graded], su.graded_rows(requests), strict=True):
        rows_by_group[label].append(row)
    out = []
    for label in order:
        mask = labels == label
        acc = avg_at_n(rows_by_group.get(label, []))
        out.append({
            key: label,
            "requests": int(mask.sum()),
            "e2e_mean": su.mean(e2e[mask]),
            "e2e_p50": su.quantile(e2e[mask], 0.5),
            "e2e_p90": su.quantile(e2e[mask], 0.9),
            "reasoning_tokens_mean": su.mean(reasoning[mask]),
            "reasoning_tokens_p50": su.quantile(reasoning[mask], 0.5),
            "completion_tokens_mean": su.mean(completion[mask]),
            "truncation_rate": su.mean(truncated[mask]),
            "accuracy": acc["avg"],
            "accuracy_se": acc["se"],
            "problems": acc["n_problems"],
        })
    return out


def trends(groups: list[dict[str, Any]]) -> dict[str, dict[str, float] | None]:
    """Linear fits of the per-level values against the numeric level, when >= 3 levels."""
    numbered = [(su.as_number(g["level"]), g) for g in groups]
    points = [(x, g) for x, g in numbered if x is not None]
    if len(points) < MIN_TREND_LEVELS:
        return {}
    xs = [x for x, _ in points]
    return {key: su.fit_line(xs, [g[key] for _, g in points])
            for key in ("e2e_mean", "reasoning_tokens_mean", "accuracy")}


COLUMNS = [("requests", "requests"), ("mean E2E (s)", "e2e_mean"),
           ("p50 E2E (s)", "e2e_p50"), ("p90 E2E (s)", "e2e_p90"),
           ("mean reasoning tokens", "reasoning_tokens_mean"),
           ("truncation rate", "truncation_rate"), ("accuracy (avg@n)", "accuracy"),
           ("accuracy SE", "accuracy_se")]


def groups_table(title: str, groups: list[dict[str, Any]], key: str = "level") -> Table:
    cols = [(key, key), *COLUMNS]
    return Table(title, [c for c, _ in cols], [[g[k] for _, k in cols] for g in groups])


def groups_figures(prefix: str, key: str, groups: list[dict[str, Any]]) -> list[Figure]:
    x_label = key
    x = [g[key] for g in groups]

    def col(key: str) -> list[Any]:
        return [g[key] for g in groups]

    figs = [
        Figure(f"{prefix}-e2e", f"E2E by {x_label}", "bar", x_label, "E2E (s)",
               [Series("mean", x, col("e2e_mean")), Series("p90", x, col("e2e_p90"))]),
        Figure(f"{prefix}-reasoning", f"Reasoning tokens by {x_label}", "bar", x_label,
               "reasoning tokens (mean)", [Series("mean", x, col("reasoning_tokens_mean"))]),
    ]
    if any(v is not None for v in col("accuracy")):
        figs.append(Figure(
            f"{prefix}-accuracy", f"Accuracy by {x_label}", "bar", x_label, "avg@n",
            [Series("avg@n", x, col("accuracy"),
                    extra={"y_err": [e or 0.0 for e in col("accuracy_se")]})],
            notes="error bars: one standard error over problems",
        ))
    return figs


def analyze_difficulty(run: RunData) -> AnalysisResult:
    ok = su.ok_rows(run.requests)
    if ok.num_rows == 0:
        return AnalysisResult(name="difficulty", title=TITLE,
                              skipped="no successful requests")
    labels = level_labels(ok)
    order = su.sort_levels(np.unique(labels).tolist())
    groups = group_table(ok, labels, order)
    fits = trends(groups)
    numbers = {
        "levels": order,
        "level_source": "difficulty" if (su.text(ok, "difficulty", "") != "").any()
        else "dataset",
        "by_level": groups,
        "trend": fits,
    }
    return AnalysisResult(
        name="difficulty", title=TITLE, numbers=numbers,
        tables=[groups_table("By difficulty level", groups)],
        figures=groups_figures("difficulty", "level", groups),
        findings=_findings(groups, fits),
    )


def _findings(groups: list[dict[str, Any]], fits: dict[str, Any]) -> list[str]:
    if len(groups) < 2:
        return [f"All requests share one difficulty level ({groups[0]['level']})."]
    out = []
    timed = [g for g in groups if g["e2e_mean"]]
    numeric = [g for g in timed if su.as_number(g["level"]) is not None]
    if len(numeric) >= 2:  # lowest to highest level
        first, last = numeric[0], numeric[-1]
        out.append(f"Mean E2E goes from {first['e2e_mean']:.2f} s at level {first['level']} "
                   f"to {last['e2e_mean']:.2f} s at level {last['level']} "
                   f"({last['e2e_mean'] / first['e2e_mean']:.1f}x).")
    elif len(timed) >= 2:  # named levels (datasets): no order, so the extremes
        lo = min(timed, key=lambda g: g["e2e_mean"])
        hi = max(timed, key=lambda g: g["e2e_mean"])
        out.append(f"Mean E2E is longest for {hi['level']} ({hi['e2e_mean']:.2f} s) and "
                   f"shortest for {lo['level']} ({lo['e2e_mean']:.2f} s).")
    units = {"e2e_mean": ("E2E", "s"), "reasoning_tokens_mean": ("reasoning", "tokens"),
             "accuracy": ("accuracy", "")}
    for key, (name, unit) in units.items():
        fit = fits.get(key)
        if fit is None or fit["r"] is None:
            continue
        per = f"{100 * fit['slope']:+.1f} points" if key == "accuracy" else \
            f"{fit['slope']:+,.2f} {unit}"
        out.append(f"Trend: {name} changes by {per} per level (r = {fit['r']:.2f}).")
    return out


@ANALYSES.register("difficulty")
def difficulty(runs: list[RunData]) -> AnalysisResult:
    """Single-run analysis: E2E, reasoning tokens and accuracy per difficulty level."""
    (run,) = runs
    return analyze_difficulty(run)
