"""Domain preference: does the model spend its reasoning on math more than on science
questions or chat, and is it more accurate there?

Groups by the ``domain`` column (math / science / chat / ...); rows without one are
"unknown". Per domain: accuracy (avg@n with its standard error) and reasoning tokens,
plus E2E and truncation, the same per-group columns as the difficulty analysis.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from reasonperf.analysis import stats_util as su
from reasonperf.analysis.base import ANALYSES, AnalysisResult, RunData
from reasonperf.analysis.difficulty import group_table, groups_figures, groups_table

TITLE = "Accuracy and reasoning by domain"


def analyze_domains(run: RunData) -> AnalysisResult:
    ok = su.ok_rows(run.requests)
    labels = su.text(ok, "domain")
    if ok.num_rows == 0 or (labels == su.UNKNOWN).all():
        return AnalysisResult(name="domain", title=TITLE,
                              skipped="no successful request carries a domain label")
    order = sorted(np.unique(labels).tolist())
    groups = group_table(ok, labels, order, key="domain")
    return AnalysisResult(
        name="domain", title=TITLE,
        numbers={"domains": order, "by_domain": groups},
        tables=[groups_table("By domain", groups, key="domain")],
        figures=groups_figures("domain", "domain", groups),
        findings=_findings(groups),
    )


def _findings(groups: list[dict[str, Any]]) -> list[str]:
    if len(groups) == 1:
        g = groups[0]
        return [f"Every request is in one domain ({g['domain']}): nothing to compare."]
    out = []
    tok = _extremes(groups, "reasoning_tokens_mean")
    if tok == "same":
        out.append("Reasoning length is the same in every domain.")
    elif tok:
        hi, lo = tok
        out.append(f"Reasoning is longest for {hi['domain']} (mean "
                   f"{hi['reasoning_tokens_mean']:,.0f} tokens) and shortest for "
                   f"{lo['domain']} ({lo['reasoning_tokens_mean']:,.0f}).")
    acc = _extremes(groups, "accuracy")
    if acc == "same":
        out.append("Accuracy is the same in every graded domain.")
    elif acc:
        hi, lo = acc
        out.append(f"Accuracy is highest for {hi['domain']} ({100 * hi['accuracy']:.0f} %) and "
                   f"lowest for {lo['domain']} ({100 * lo['accuracy']:.0f} %).")
    return out


def _extremes(
    groups: list[dict[str, Any]], key: str
) -> tuple[dict[str, Any], dict[str, Any]] | Literal["same"] | None:
    """(highest, lowest) group by ``key``; "same" when they are equal; None if < 2 groups."""
    have = [g for g in groups if g[key] is not None]
    if len(have) < 2:
        return None
    hi = max(have, key=lambda g: g[key])
    lo = min(have, key=lambda g: g[key])
    return "same" if hi[key] == lo[key] else (hi, lo)


@ANALYSES.register("domain")
def domain(runs: list[RunData]) -> AnalysisResult:
    """Single-run analysis: accuracy and reasoning tokens per domain."""
    (run,) = runs
    return analyze_domains(run)
