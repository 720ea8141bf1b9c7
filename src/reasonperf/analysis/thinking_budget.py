"""Thinking-budget curves (issue 14): what a thinking budget buys, one point per run.

Used by the budget analysis when the runs differ in their thinking budget: each curve
(runs equal in every other setting, max_tokens included) is keyed by the budget sent,
with accuracy, TTFVT, tokens per correct answer and budget adherence per point, and the
Pareto front over (accuracy up, TTFVT p50 down, tokens per correct down) is marked.
"""

from __future__ import annotations

from typing import Any

from reasonperf.analysis import stats_util as su
from reasonperf.analysis.base import AnalysisResult, Figure, RunData, Series, Table
from reasonperf.grading.stats import tokens_per_correct

TITLE = "Thinking budget curves (accuracy / TTFVT / tokens per correct, Pareto front)"
SPEC_KEYS = frozenset({"sampling.thinking_budget", "sampling.answer_reserve",
                       "sampling.budget_field"})
METRICS = [  # key, label, figure id
    ("accuracy", "accuracy (avg@n)", "thinking-budget-accuracy"),
    ("ttfvt_p50", "TTFVT p50 (s)", "thinking-budget-ttfvt"),
    ("tokens_per_correct", "tokens per correct answer", "thinking-budget-tokens-per-correct"),
    ("violations", "requests over the budget", "thinking-budget-violations"),
]
OBJECTIVES = (("accuracy", 1), ("ttfvt_p50", -1), ("tokens_per_correct", -1))


def thinking_budget_of(run: RunData) -> int | None:
    """The budget the run sent (run.json's ``budget``), else the spec's thinking_budget."""
    sent = (run.info.get("budget") or {}).get("budget")
    if sent is not None:
        return int(sent)
    value = (su.run_spec(run.info).get("sampling") or {}).get("thinking_budget")
    return None if value is None else int(value)


def differ_in_thinking_budget(runs: list[RunData]) -> bool:
    return len({thinking_budget_of(r) for r in runs}) > 1


def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """a is at least as good as b in every objective and better in one."""
    better = False
    for key, sign in OBJECTIVES:
        if sign * a[key] < sign * b[key]:
            return False
        better = better or sign * a[key] > sign * b[key]
    return better


def mark_pareto(points: list[dict[str, Any]]) -> None:
    """Set ``pareto`` on each point: True/False, None where an objective is unknown."""
    known = [p for p in points if all(p[k] is not None for k, _ in OBJECTIVES)]
    for p in points:
        p["pareto"] = (not any(dominates(q, p) for q in known if q is not p)
                       if p in known else None)


def run_point(run: RunData, base: dict[str, Any]) -> dict[str, Any]:
    """The budget-analysis point of a run plus its thinking budget, tokens per correct
    answer and adherence (from summary.json when present)."""
    budget = (run.summary or {}).get("budget") or {}
    return {**base, "thinking_budget": thinking_budget_of(run),
            "tokens_per_correct": tokens_per_correct(run.requests.select(
                [c for c in ("correct", "completion_tokens") if c in run.requests.column_names]
            ).to_pylist()),
            "violations": budget.get("violations"), "worst_excess": budget.get("worst_excess"),
            "no_answer": budget.get("no_answer")}


def analyze_thinking_budget(points: list[dict[str, Any]], labels: list[str]) -> AnalysisResult:
    """Curves keyed by the thinking budget; ``labels`` split the runs into curves."""
    usable = [(p, lab) for p, lab in zip(points, labels, strict=True)
              if p["thinking_budget"] is not None]
    curves: dict[str, list[dict[str, Any]]] = {}
    for p, lab in sorted(usable, key=lambda pl: (pl[1], pl[0]["thinking_budget"])):
        p["curve"] = lab
        curves.setdefault(lab, []).append(p)
    for pts in curves.values():
        mark_pareto(pts)
    figures = []
    for key, label, fig_id in METRICS:
        series = [Series(name, [p["thinking_budget"] for p in pts], [p[key] for p in pts],
                         extra={"pareto": [p["pareto"] for p in pts]})
                  for name, pts in curves.items()]
        if any(v is not None for s in series for v in s.y):
            figures.append(Figure(fig_id, f"{label} against the thinking budget", "line",
                                  "thinking budget (tokens)", label, series))
    columns = ["curve", "run", "thinking budget", "accuracy", "TTFVT p50 (s)",
               "tokens/correct", "over budget", "worst excess", "no answer", "Pareto"]
    rows = [[p["curve"], p["run"], p["thinking_budget"], p["accuracy"], p["ttfvt_p50"],
             p["tokens_per_correct"], p["violations"], p["worst_excess"], p["no_answer"],
             {True: "yes", False: "no"}.get(p["pareto"])]
            for pts in curves.values() for p in pts]
    return AnalysisResult(
        name="budget", title=TITLE,
        numbers={"axis": "thinking_budget", "curves": curves,
                 "pareto": {c: [p["thinking_budget"] for p in pts if p["pareto"]]
                            for c, pts in curves.items()}},
        tables=[Table("One point per run", columns, rows)],
        figures=figures, findings=_findings(curves))


def _findings(curves: dict[str, list[dict[str, Any]]]) -> list[str]:
    out = []
    for name, pts in curves.items():
        prefix = f"{name}: " if len(curves) > 1 else ""
        front = [p["thinking_budget"] for p in pts if p["pareto"]]
        if front:
            out.append(f"{prefix}the Pareto front (accuracy, TTFVT, tokens per correct) is at "
                       f"thinking budgets {', '.join(map(str, front))}.")
        over = [p for p in pts if p["violations"]]
        if over:
            worst = max(over, key=lambda p: p["worst_excess"] or 0)
            out.append(f"{prefix}the engine overran the budget in {len(over)} of {len(pts)} "
                       f"runs (worst: {worst['worst_excess']} tokens over "
                       f"{worst['thinking_budget']}).")
    return out
