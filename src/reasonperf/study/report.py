"""The study report's analysis results: an overview of the cells, the registered analyses
of the finished cells, budget curves across them, and arm comparisons.

An arm comparison sets the levels of one axis against its first level (the baseline),
cell by cell among cells that agree on every other axis, with ``analysis.compare``. By
default the compared axes are those that change the engine or name arms of their own;
an axis whose levels differ in having a reasoning parser is titled LLM vs RLLM.
"""

from __future__ import annotations

from typing import Any

from reasonperf.analysis.base import AnalysisResult, RunData, Table
from reasonperf.analysis.findings import analyze_findings
from reasonperf.analysis.registry_all import ANALYSES, MULTI_RUN, run_analyses
from reasonperf.study.expand import Cell, StudyPlan
from reasonperf.study.spec import resolve_path


def build_results(plan: StudyPlan, records: dict[str, dict[str, Any]], done: list[Cell],
                  runs: list[RunData]) -> list[AnalysisResult]:
    """Every result the study report shows: the findings table first (the study's
    findings against these cells, arms included), the overview, then what compares cells
    (budget curves, arm comparisons), then each cell's own analyses."""
    names = plan.spec.report.analyses or ANALYSES.names()
    arms = arm_comparisons(plan, done, runs) if "compare" in names else []
    results = [analyze_findings(runs, arms), overview(plan, records)]
    if "budget" in names:
        results.append(ANALYSES.get("budget")(runs))
    results += arms
    results += run_analyses(runs, [n for n in names if n not in MULTI_RUN])
    return results


def overview(plan: StudyPlan, records: dict[str, dict[str, Any]]) -> AnalysisResult:
    axes = list(plan.spec.matrix)
    columns = ["cell", "status", *axes, "accuracy", "E2E p50 (s)", "TTFVT p50 (s)",
               "output tok/s", "note"]
    rows = []
    counts: dict[str, int] = {}
    for cell in plan.cells:
        rec = records.get(cell.id, {})
        status = rec.get("status", "pending")
        counts[status] = counts.get(status, 0) + 1
        s = rec.get("summary") or {}
        note = rec.get("reason") or rec.get("error") or ""
        rows.append([cell.id, status, *(cell.levels[a] for a in axes), s.get("accuracy"),
                     s.get("e2e_p50_s"), s.get("ttfvt_p50_s"), s.get("output_tps"), note[:300]])
    findings = [line for line in (plan.spec.description.strip(), plan.spec.reported.strip())
                if line]
    for cell in plan.cells:
        rec = records.get(cell.id, {})
        if rec.get("status") == "failed":
            findings.append(f"{cell.id} failed: {rec.get('error', '')[:300]}")
        elif rec.get("status") == "skipped":
            findings.append(f"{cell.id} was skipped: {rec.get('reason')}")
    return AnalysisResult(
        name="study",
        title=f"Study {plan.spec.name}" + (f" (profile {plan.profile})" if plan.profile else ""),
        numbers={"cells": len(plan.cells), **counts, "engine groups": len(plan.groups),
                 "excluded by rules": plan.excluded},
        tables=[Table("Cells", columns, rows)],
        findings=findings,
    )


def compared_axes(plan: StudyPlan) -> list[str]:
    if plan.spec.report.compare is not None:
        return list(plan.spec.report.compare)
    out = []
    for axis in plan.spec.matrix:
        path = resolve_path(axis)
        if path is None or path == "engine" or path.startswith("engine."):
            out.append(axis)
    return out


def _is_llm_vs_rllm(cells: list[Cell]) -> bool:
    return len({c.spec.engine.reasoning_parser is None for c in cells}) == 2


def arm_comparisons(plan: StudyPlan, done: list[Cell], runs: list[RunData]
                    ) -> list[AnalysisResult]:
    from reasonperf.analysis.compare import compare_sides

    out = []
    for axis in compared_axes(plan):
        groups: dict[tuple[Any, ...], list[tuple[Cell, RunData]]] = {}
        for cell, run in zip(done, runs, strict=True):
            key: tuple[Any, ...] = tuple(
                (a, lab) for a, lab in cell.levels.items() if a != axis)
            groups.setdefault(key, []).append((cell, run))
        for key, members in groups.items():
            # the repeats of one level are one side: the comparison's CIs are over runs
            sides: dict[Any, list[tuple[Cell, RunData]]] = {}
            for cell, run in members:
                sides.setdefault(cell.levels[axis], []).append((cell, run))
            if len(sides) < 2:
                continue
            result = compare_sides([[run for _, run in side] for side in sides.values()])
            members = [side[0] for side in sides.values()]
            base = members[0][0].levels[axis]
            others = ", ".join(c.levels[axis] for c, _ in members[1:])
            context = ", ".join(f"{a}={lab}" for a, lab in key)
            kind = "LLM vs RLLM" if _is_llm_vs_rllm([c for c, _ in members]) else "Arms"
            result.title = (f"{kind} on {axis}: {others} against {base}"
                            + (f" ({context})" if context else ""))
            out.append(result)
    return out
