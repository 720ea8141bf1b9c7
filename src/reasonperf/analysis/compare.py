"""Compare runs: the first is the baseline, every other run is set against it.

For each headline metric: the baseline's value, the run's value, the delta (run minus
baseline) with a bootstrap confidence interval, and a verdict. The verdict names a
direction only when the interval excludes 0; otherwise "no significant difference".

Resampling (percentile bootstrap, seeded, so a comparison is reproducible):
- latency and throughput: requests, each run resampled on its own (requests of two runs
  are not paired: they ran at different times under different load);
- accuracy: problems. When both runs answered the same problems the resampling is
  paired (one resample of problems applied to both), which removes the between-problem
  spread from the delta: two runs of one configuration then show no difference, not a
  wide interval around it.
Each metric is tested on its own (no correction for testing ten metrics at once): a
lone borderline verdict among many deserves a rerun before a conclusion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reasonperf.analysis import stats_util as su
from reasonperf.analysis.base import ANALYSES, AnalysisResult, Figure, RunData, Series, Table
from reasonperf.grading.stats import avg_at_n
from reasonperf.metrics import catalog
from reasonperf.metrics.request import request_metrics

TITLE = "Comparison against the baseline"
N_BOOT = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class MetricDef:
    key: str
    label: str
    kind: str  # "latency" (lower is better) | "throughput" | "accuracy" (higher is better)
    unit: str


LATENCY = [(m, s) for m in ("ttft", "ttfvt", "e2e", "tpot") for s in ("p50", "mean")]
# names, labels, units and directions from the metric catalogue; accuracy keeps the unit
# "" this module formats as a percentage


def _kind(name: str) -> str:
    """The verdict words of a catalogued metric: lower is better reads "latency"."""
    return "latency" if catalog.get(name).direction == "lower" else "throughput"


METRICS = [
    *(MetricDef(f"{m}_{s}", f"{catalog.get(m).label} {s}", _kind(m), catalog.get(m).unit)
      for m, s in LATENCY),
    MetricDef("output_tps", catalog.get("output_tps").label, _kind("output_tps"),
              catalog.get("output_tps").unit),
    MetricDef("accuracy", catalog.get("accuracy").label, "accuracy", ""),
]
WORDS = {  # kind -> (word when the metric went up, word when it went down)
    "latency": ("slower", "faster"),
    "throughput": ("faster", "slower"),
    "accuracy": ("more accurate", "less accurate"),
}
NO_DIFF = "no significant difference"
NOT_AVAILABLE = "n/a"


@dataclass
class _Side:
    """What one run contributes: per-request metric arrays and per-problem accuracy."""

    latency: dict[str, np.ndarray]
    completion: np.ndarray
    sent: np.ndarray
    done: np.ndarray
    tps: float | None
    problems: np.ndarray
    per_problem: np.ndarray
    accuracy: dict[str, Any]


def _side(run: RunData) -> _Side:
    ok = su.ok_rows(run.requests)
    keys, per_problem = su.per_problem_accuracy(run.requests)
    return _Side(
        latency=request_metrics(ok),
        completion=su.finite(su.num(ok, "completion_tokens")),
        sent=su.finite(su.num(ok, "sent_s")),
        done=su.finite(su.num(ok, "done_s")),
        tps=su.output_tps(ok),
        problems=keys,
        per_problem=per_problem,
        accuracy=avg_at_n(su.graded_rows(run.requests)),
    )


def _point_and_reps(metric: MetricDef, side: _Side, n_boot: int, rng: np.random.Generator
                    ) -> tuple[float | None, np.ndarray | None]:
    """A run's value of a latency / throughput metric and its bootstrap replicates."""
    if metric.kind == "throughput":
        if side.tps is None or len(side.completion) < 2:
            return side.tps, None
        # tokens / (last done - first sent), both recomputed per resample: the window's
        # ends are order statistics (drawn exactly), the token sum is n x the mean; the
        # three are drawn independently, which ignores their weak dependence
        tokens = su.bootstrap_mean(side.completion, n_boot, rng) * len(side.completion)
        window = (su.bootstrap_quantile(side.done, 1.0, n_boot, rng)
                  - su.bootstrap_quantile(side.sent, 0.0, n_boot, rng))
        with np.errstate(divide="ignore", invalid="ignore"):
            return side.tps, np.where(window > 0, tokens / window, np.nan)
    name, stat = metric.key.rsplit("_", 1)
    values = su.finite(side.latency[name])
    point = su.quantile(values, 0.5) if stat == "p50" else su.mean(values)
    if len(values) < 2:
        return point, None
    reps = (su.bootstrap_quantile(values, 0.5, n_boot, rng) if stat == "p50"
            else su.bootstrap_mean(values, n_boot, rng))
    return point, reps


def _accuracy_delta(base: _Side, cand: _Side, n_boot: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray | None, bool]:
    """Bootstrap replicates of the accuracy delta, and whether they were paired."""
    if len(base.per_problem) < 2 or len(cand.per_problem) < 2:
        return None, False
    if np.array_equal(base.problems, cand.problems):
        return su.bootstrap_mean(cand.per_problem - base.per_problem, n_boot, rng), True
    reps = (su.bootstrap_mean(cand.per_problem, n_boot, rng)
            - su.bootstrap_mean(base.per_problem, n_boot, rng))
    return reps, False


def verdict(kind: str, ci_low: float | None, ci_high: float | None) -> str:
    """The plain-language verdict for one metric from its delta's interval."""
    if ci_low is None or ci_high is None:
        return NOT_AVAILABLE
    up, down = WORDS[kind]
    if ci_low > 0:
        return up
    if ci_high < 0:
        return down
    return NO_DIFF


def overall(rows: list[dict[str, Any]]) -> str:
    """One line from the per-metric verdicts, e.g. "faster, same accuracy"."""
    speed_rows = [r for r in rows if r["kind"] != "accuracy" and r["verdict"] != NOT_AVAILABLE]
    faster = [r["label"] for r in speed_rows if r["verdict"] == "faster"]
    slower = [r["label"] for r in speed_rows if r["verdict"] == "slower"]
    if not speed_rows:
        speed = "speed n/a"
    elif faster and slower:
        speed = f"mixed speed (faster: {', '.join(faster)}; slower: {', '.join(slower)})"
    elif faster:
        speed = "faster"
    elif slower:
        speed = "slower"
    else:
        speed = "same speed"
    acc = next((r["verdict"] for r in rows if r["kind"] == "accuracy"), NOT_AVAILABLE)
    accuracy = {NO_DIFF: "same accuracy", NOT_AVAILABLE: "accuracy not compared"}.get(acc, acc)
    return f"{speed}, {accuracy}"


def _compare_pair(base: _Side, cand: _Side, n_boot: int, confidence: float,
                  seed: int, index: int) -> tuple[list[dict[str, Any]], bool]:
    rows = []
    paired = False
    for m_index, metric in enumerate(METRICS):
        rng = np.random.default_rng([seed, index, m_index])
        if metric.kind == "accuracy":
            b_val, c_val = base.accuracy["avg"], cand.accuracy["avg"]
            reps, paired = _accuracy_delta(base, cand, n_boot, rng)
        else:
            b_val, b_reps = _point_and_reps(metric, base, n_boot, rng)
            c_val, c_reps = _point_and_reps(metric, cand, n_boot, rng)
            reps = c_reps - b_reps if b_reps is not None and c_reps is not None else None
        lo, hi = su.percentile_ci(reps, confidence) if reps is not None else (None, None)
        delta = c_val - b_val if b_val is not None and c_val is not None else None
        rows.append({
            "metric": metric.key, "label": metric.label, "kind": metric.kind,
            "unit": metric.unit, "baseline": b_val, "value": c_val, "delta": delta,
            "delta_pct": _pct(delta, b_val),
            "ci_low": lo, "ci_high": hi, "verdict": verdict(metric.kind, lo, hi),
        })
    return rows, paired


def compare_runs(runs: list[RunData], n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
                 seed: int = 0) -> AnalysisResult:
    """Every run after the first against the first (the baseline)."""
    if len(runs) < 2:
        return AnalysisResult(name="compare", title=TITLE,
                              skipped="needs at least two runs (the first is the baseline)")
    base = _side(runs[0])
    comparisons = []
    findings = []
    for index, run in enumerate(runs[1:], start=1):
        rows, paired = _compare_pair(base, _side(run), n_boot, confidence, seed, index)
        line = overall(rows)
        comparisons.append({"run": run.label, "overall": line, "accuracy_paired": paired,
                            "metrics": rows})
        findings.append(f"{run.label} vs {runs[0].label}: {line}.")
        if not paired and any(r["kind"] == "accuracy" and r["ci_low"] is not None for r in rows):
            findings.append(f"{run.label} answered a different set of problems than the "
                            "baseline, so its accuracy was compared unpaired.")
    return AnalysisResult(
        name="compare", title=TITLE,
        numbers={"baseline": runs[0].label, "n_boot": n_boot, "confidence": confidence,
                 "seed": seed, "comparisons": comparisons},
        figures=[_figure(comparisons, confidence)],
        findings=findings,
    )


def _pct(value: float | None, base: float | None) -> float | None:
    return su.fnum(100 * value / base) if value is not None and base else None


def _figure(comparisons: list[dict[str, Any]], confidence: float) -> Figure:
    series = []
    for comp in comparisons:
        rows = comp["metrics"]
        low = [_pct(r["ci_low"], r["baseline"]) for r in rows]
        high = [_pct(r["ci_high"], r["baseline"]) for r in rows]
        series.append(Series(
            comp["run"], [r["label"] for r in rows], [r["delta_pct"] for r in rows],
            extra={
                "ci_low": low, "ci_high": high,
                "y_err": [(h - lo) / 2 if lo is not None and h is not None else None
                          for lo, h in zip(low, high, strict=True)],
                "text": [r["verdict"] for r in rows],
            },
        ))
    return Figure("compare-deltas", "Change against the baseline", "bar", "metric",
                  "change (% of baseline)", series,
                  notes=f"bars: run minus baseline in % of the baseline; ci_low / ci_high: "
                        f"{confidence:.0%} bootstrap interval")


# --------------------------------------------------------------------------- table


def _value(x: float | None, unit: str, signed: bool = False) -> str:
    if x is None:
        return NOT_AVAILABLE
    sign = "+" if signed else ""
    if unit == "":  # accuracy: a fraction shown in percent / percentage points
        return f"{100 * x:{sign}.1f} {'pts' if signed else '%'}"
    if unit == "tok/s":
        return f"{x:{sign},.1f} tok/s"
    return f"{x:{sign}.3g} s" if abs(x) < 1 else f"{x:{sign},.2f} s"


def compare_table(result: AnalysisResult) -> Table:
    """The comparison as a table for ``reasonperf compare``: one row per metric (plus an
    overall row) per compared run; a "run" column only when there are several."""
    confidence = result.numbers.get("confidence", CONFIDENCE)
    if result.skipped:
        return Table(f"{TITLE}: {result.skipped}", ["metric"], [])
    comps = result.numbers["comparisons"]
    many = len(comps) > 1
    columns = (["run"] if many else []) + ["metric", f"baseline ({result.numbers['baseline']})",
                                           "run" if many else comps[0]["run"], "delta",
                                           f"{confidence:.0%} CI", "verdict"]
    rows = []
    for comp in comps:
        lead = [comp["run"]] if many else []
        for r in comp["metrics"]:
            if r["ci_low"] is None:
                ci = NOT_AVAILABLE
            else:
                scale = 100 if r["unit"] == "" else 1
                ci = f"[{scale * r['ci_low']:+.3g}, {scale * r['ci_high']:+.3g}]"
            delta = _value(r["delta"], r["unit"], signed=True)
            if r["delta_pct"] is not None and r["unit"] != "":
                delta += f" ({r['delta_pct']:+.1f} %)"
            rows.append(lead + [r["label"], _value(r["baseline"], r["unit"]),
                                _value(r["value"], r["unit"]), delta, ci, r["verdict"]])
        rows.append(lead + ["overall", "", "", "", "", comp["overall"]])
    return Table(TITLE, columns, rows)


@ANALYSES.register("compare")
def compare(runs: list[RunData]) -> AnalysisResult:
    """Multi-run analysis: deltas of the headline metrics with bootstrap CIs and verdicts."""
    result = compare_runs(runs)
    if not result.skipped:
        result.tables.append(compare_table(result))
    return result
