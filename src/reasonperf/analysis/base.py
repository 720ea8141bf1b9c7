"""The analysis contract: a registered function of one or more stored runs that returns a
small ``AnalysisResult`` (numbers, tables, figure data). The report renders results
generically, so a new analysis is one module + ``@ANALYSES.register(name)``, with no
change to the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from reasonperf.registry import Registry


@dataclass
class RunData:
    """One stored run, loaded: what every analysis reads (never the engine)."""

    run_dir: str
    info: dict[str, Any]  # run.json
    requests: pa.Table
    chunks: pa.Table
    timeline: pa.Table
    summary: dict[str, Any] | None = None  # summary.json when present

    @property
    def label(self) -> str:
        return str(self.info.get("name") or self.run_dir)


@dataclass
class Series:
    """One line / set of bars / set of points of a figure."""

    name: str
    x: list[Any]
    y: list[Any]
    # optional per-point extras: "y_err" (error bars), "x_end" (gantt bar ends),
    # "text" (hover labels), "color_by" (category per point)
    extra: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class Figure:
    """Figure data, not pixels: kind is one of "line", "step", "scatter", "bar", "cdf",
    "gantt", "hist". The report decides how to draw it."""

    id: str
    title: str
    kind: str
    x_label: str
    y_label: str
    series: list[Series]
    notes: str | None = None


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class AnalysisResult:
    name: str  # the registry name
    title: str
    numbers: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable headline numbers
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # plain-language sentences
    skipped: str | None = None  # why the analysis does not apply to these runs (then empty)


# An analysis takes the runs (one for single-run analyses; several for budget/compare)
AnalysisFn = Callable[[list[RunData]], AnalysisResult]
ANALYSES: Registry[AnalysisFn] = Registry("analysis")
