"""Compare runs: the first side is the baseline, every other side is set against it.

A side is one run, or several repeats of one configuration. For each headline metric:
the baseline's value, the side's value, the delta (side minus baseline) with a confidence
interval, how that interval was made (its "CI method"), and a verdict.

The interval honours what is independent in the data (``analysis.resample``):
- several runs on a side (repeats): every metric is a number per run, and the interval
  is a t interval over runs (variance pooled over both sides). This is the only method
  that sees run-to-run noise (another minute of the machine, a warmed cache) and the one
  to use for decisions;
- one run each, per-request latency percentiles and means: in batch mode whole batches
  are resampled (a batch shares its fate: one slow request holds the next batch back, and
  all requests of a batch compete with the same others), with delta +- t x SE rather
  than percentiles because a run has few batches; otherwise requests;
- one run each, a whole-run figure (output tok/s): a circular block bootstrap of the token
  counts per time window when the run spans at least MIN_BLOCKS blocks; a block lasts as
  long as the longest request, so two windows one block apart share no request, and a
  window is a quarter of a block. A shorter run gets "no CI: one run each" and no verdict:
  a throughput is one number per run, and requests resampled within it (as this module
  once did) give an interval that ignores everything that varies between runs;
- accuracy: problems, paired (one resample of problems applied to both sides) when both
  sides answered the same problems, which removes the between-problem spread from the
  delta; repeats of a side pool their samples per problem.

The verdict names a direction only when the interval lies beyond 0 on one side; for a
speed metric compared one run each, it must lie beyond +-``min_effect_pct`` (default
10 %) of the baseline. That band is what keeps one-run comparisons honest: none of the
one-run intervals can see run-to-run drift, and two runs of one configuration on a loaded
2-core machine differed by up to ~12 % in TTFT p50 (tests/test_compare_fake.py
conditions). Intervals over repeats include that drift and need no band. Accuracy has
none either (paired by problem). Each metric is tested on its own (no correction for
testing ten metrics at once): with repeats, a lone verdict among many deserves a rerun.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reasonperf.analysis import resample
from reasonperf.analysis import stats_util as su
from reasonperf.analysis.base import ANALYSES, AnalysisResult, Figure, RunData, Series, Table
from reasonperf.grading.stats import avg_at_n
from reasonperf.metrics import catalog
from reasonperf.metrics.request import request_metrics

TITLE = "Comparison against the baseline"
N_BOOT = 2000
CONFIDENCE = 0.95
MIN_EFFECT_PCT = 10.0  # one run each: a speed CI must clear +-this % of the baseline
MIN_BATCHES = 5  # per run, to resample batches
MIN_BLOCKS = 10  # per run, for a block bootstrap of a run-level rate
WINDOWS_PER_BLOCK = 4

# how an interval was made (the table's "CI method" column)
CI_REQUESTS = "requests"
CI_BATCHES = "batches"
CI_TIME_BLOCKS = "time blocks"
CI_REPEATS = "repeats"
CI_PROBLEMS = "problems"
CI_PROBLEMS_PAIRED = "problems (paired)"
NO_CI_ONE_RUN = "no CI: one run each"
NO_CI_FEW_BATCHES = f"no CI: under {MIN_BATCHES} batches"
NO_CI_FEW_VALUES = "no CI: under 2 values"
NO_CI_UNGRADED = "no CI: not graded"


@dataclass(frozen=True)
class MetricDef:
    key: str
    label: str
    kind: str  # "latency" (lower is better) | "throughput" | "accuracy" (higher is better)
    unit: str
    level: str = "request"  # "request": one value per request | "run": one per run


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
              catalog.get("output_tps").unit, level="run"),
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
class _Windows:
    """A run's output tokens per time window, and the block length (in windows)."""

    counts: np.ndarray
    width_s: float
    block: int


@dataclass
class _Run:
    """What one run contributes to the speed metrics."""

    latency: dict[str, np.ndarray]  # per ok request
    batch: np.ndarray | None  # batch id per ok request in batch mode, else None
    tps: float | None
    windows: _Windows | None  # None when the run is too short for a block bootstrap


@dataclass
class _Side:
    """One side of a comparison: its runs (repeats) and the accuracy over all of them."""

    label: str
    runs: list[_Run]
    problems: np.ndarray
    per_problem: np.ndarray
    accuracy: dict[str, Any]


def _run(run: RunData) -> _Run:
    ok = su.ok_rows(run.requests)
    arrival = su.run_spec(run.info).get("arrival") or {}
    batch = None
    if isinstance(arrival, dict) and arrival.get("name") == "batch":
        # the runner stamps every request of a batch with the batch's start time
        batch = np.unique(su.num(ok, "scheduled_s"), return_inverse=True)[1]
    return _Run(latency=request_metrics(ok), batch=batch, tps=su.output_tps(ok),
                windows=_token_windows(ok, run.chunks))


def _side(runs: list[RunData]) -> _Side:
    requests = pa.concat_tables([r.requests for r in runs], promote_options="default")
    keys, per_problem = su.per_problem_accuracy(requests)
    label = runs[0].label if len(runs) == 1 else f"{runs[0].label} x{len(runs)}"
    return _Side(label=label, runs=[_run(r) for r in runs], problems=keys,
                 per_problem=per_problem, accuracy=avg_at_n(su.graded_rows(requests)))


def _token_windows(ok: pa.Table, chunks: pa.Table) -> _Windows | None:
    """Output tokens per window over the run window [first sent, last done].

    A request's tokens are placed at its chunks' times when every chunk carries a count,
    otherwise spread evenly from its first token to its end. The block is the longest
    request's E2E (windows farther apart share no request; in batch mode a batch lasts as
    long as its slowest request); None when the run spans under MIN_BLOCKS blocks.
    """
    sent, done = su.num(ok, "sent_s"), su.num(ok, "done_s")
    span = done - sent
    if not np.isfinite(span).any():
        return None
    t0, t1, longest = float(np.nanmin(sent)), float(np.nanmax(done)), float(np.nanmax(span))
    if longest <= 0 or t1 <= t0 or (t1 - t0) < MIN_BLOCKS * longest:
        return None
    n_windows = math.ceil((t1 - t0) / (longest / WINDOWS_PER_BLOCK))
    edges = np.linspace(t0, t1, n_windows + 1)
    edges[-1] = np.nextafter(t1, np.inf)  # the last done_s falls inside the last window
    tokens = su.num(ok, "completion_tokens")
    counted = _chunk_counted(ok, chunks, tokens)
    ids = ok.column("request_id").filter(pa.array(counted))
    in_chunks = pc.is_in(chunks.column("request_id"), value_set=ids.combine_chunks())
    mine = chunks.filter(in_chunks)
    counts = np.histogram(su.num(mine, "t_s"), bins=edges, weights=su.num(mine, "n_tokens"))[0]
    first = su.num(ok, "first_token_s")
    start = np.where(np.isfinite(first), first, sent)
    spread = ~counted
    counts = counts + resample.spread_counts(start[spread], done[spread], tokens[spread], edges)
    return _Windows(counts=counts, width_s=(t1 - t0) / n_windows, block=WINDOWS_PER_BLOCK)


def _chunk_counted(ok: pa.Table, chunks: pa.Table, tokens: np.ndarray) -> np.ndarray:
    """Per ok request: do its chunks all carry counts, summing to its completion tokens?"""
    if chunks.num_rows == 0:
        return np.zeros(ok.num_rows, dtype=bool)
    per = chunks.group_by("request_id").aggregate(
        [("n_tokens", "sum"), ("n_tokens", "count"), ([], "count_all")])
    pos = pc.index_in(ok.column("request_id"), value_set=per.column("request_id"))
    found = np.asarray(pc.is_valid(pos).to_numpy(zero_copy_only=False), dtype=bool)
    at = np.asarray(pc.fill_null(pos, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    n_sum, n_valid, n_all = (su.num(per, c)[at] for c in
                             ("n_tokens_sum", "n_tokens_count", "count_all"))
    return found & (n_valid == n_all) & (n_sum == tokens)


# --------------------------------------------------------------------------- speed


def _run_value(metric: MetricDef, run: _Run) -> float | None:
    if metric.level == "run":
        return run.tps
    name, stat = metric.key.rsplit("_", 1)
    values = run.latency[name]
    return su.quantile(values, 0.5) if stat == "p50" else su.mean(values)


def _replicates(metric: MetricDef, run: _Run, n_boot: int, rng: np.random.Generator
                ) -> tuple[np.ndarray | None, str]:
    """Bootstrap replicates of one run's value, and the method; None when it has none."""
    if metric.level == "run":
        w = run.windows
        if w is None or run.tps is None:
            return None, NO_CI_ONE_RUN
        return resample.block_bootstrap_rate(w.counts, w.width_s, w.block, n_boot, rng), \
            CI_TIME_BLOCKS
    name, stat = metric.key.rsplit("_", 1)
    values = run.latency[name]
    keep = np.isfinite(values)
    if run.batch is not None:
        if len(np.unique(run.batch[keep])) < MIN_BATCHES:
            return None, NO_CI_FEW_BATCHES
        return resample.cluster_bootstrap(values, run.batch, stat, n_boot, rng), CI_BATCHES
    if keep.sum() < 2:
        return None, NO_CI_FEW_VALUES
    reps = (su.bootstrap_quantile(values, 0.5, n_boot, rng) if stat == "p50"
            else su.bootstrap_mean(values, n_boot, rng))
    return reps, CI_REQUESTS


def _speed(metric: MetricDef, base: _Side, cand: _Side, n_boot: int, confidence: float,
           rng: np.random.Generator) -> tuple[float | None, float | None, float | None,
                                              float | None, str]:
    """(baseline value, candidate value, CI low, CI high, CI method) of a speed metric."""
    if len(base.runs) > 1 or len(cand.runs) > 1:
        b = np.array([_run_value(metric, r) for r in base.runs], dtype=np.float64)
        c = np.array([_run_value(metric, r) for r in cand.runs], dtype=np.float64)
        lo, hi = resample.pooled_t_interval(b, c, confidence)
        return su.mean(b), su.mean(c), lo, hi, CI_REPEATS
    b_run, c_run = base.runs[0], cand.runs[0]
    b_reps, b_method = _replicates(metric, b_run, n_boot, rng)
    c_reps, c_method = _replicates(metric, c_run, n_boot, rng)
    b_val, c_val = _run_value(metric, b_run), _run_value(metric, c_run)
    if b_reps is None or c_reps is None:
        return b_val, c_val, None, None, b_method if b_reps is None else c_method
    if CI_BATCHES not in (b_method, c_method):
        lo, hi = su.percentile_ci(c_reps - b_reps, confidence)
        return b_val, c_val, lo, hi, b_method
    lo, hi = _few_clusters_interval(b_val, c_val, (b_run, b_reps), (c_run, c_reps),
                                    confidence=confidence)
    return b_val, c_val, lo, hi, CI_BATCHES


def _few_clusters_interval(b_val: float | None, c_val: float | None,
                           *sides: tuple[_Run, np.ndarray], confidence: float
                           ) -> tuple[float | None, float | None]:
    """delta +- t x SE for a delta resampled by batches: a percentile interval from a
    handful of clusters is too narrow (the bootstrap variance over G clusters is (G-1)/G
    of the unbiased one, and its tails are normal ones), so each side's bootstrap variance
    is scaled by G/(G-1) and the quantile is Student's t with (fewest batches - 1) df."""
    if b_val is None or c_val is None:
        return None, None
    var = 0.0
    fewest = math.inf
    for run, reps in sides:
        r = su.finite(reps)
        groups = len(np.unique(run.batch)) if run.batch is not None else len(run.latency["e2e"])
        if len(r) < 2 or groups < 2:
            return None, None
        var += float(r.var(ddof=1)) * groups / (groups - 1)
        fewest = min(fewest, groups)
    half = resample.t_quantile(0.5 + confidence / 2, fewest - 1) * math.sqrt(var)
    delta = c_val - b_val
    return delta - half, delta + half


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


def verdict(kind: str, ci_low: float | None, ci_high: float | None, margin: float = 0.0
            ) -> str:
    """The plain-language verdict for one metric from its delta's interval: a direction
    only when the whole interval lies beyond ``margin`` (>= 0, in the metric's unit) on
    one side of 0."""
    if ci_low is None or ci_high is None:
        return NOT_AVAILABLE
    up, down = WORDS[kind]
    if ci_low > margin:
        return up
    if ci_high < -margin:
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
                  min_effect_pct: float, seed: int, index: int
                  ) -> tuple[list[dict[str, Any]], bool]:
    rows = []
    paired = False
    for m_index, metric in enumerate(METRICS):
        rng = np.random.default_rng([seed, index, m_index])
        if metric.kind == "accuracy":
            b_val, c_val = base.accuracy["avg"], cand.accuracy["avg"]
            reps, paired = _accuracy_delta(base, cand, n_boot, rng)
            lo, hi = su.percentile_ci(reps, confidence) if reps is not None else (None, None)
            method = (NO_CI_UNGRADED if b_val is None or c_val is None
                      else NO_CI_FEW_VALUES if reps is None
                      else CI_PROBLEMS_PAIRED if paired else CI_PROBLEMS)
            margin = 0.0
        else:
            b_val, c_val, lo, hi, method = _speed(metric, base, cand, n_boot, confidence, rng)
            # one-run intervals cannot see run-to-run drift: they must clear a band
            margin = (0.0 if method == CI_REPEATS or b_val is None
                      else abs(b_val) * min_effect_pct / 100)
        delta = c_val - b_val if b_val is not None and c_val is not None else None
        delta_pct = _pct(delta, b_val)
        rows.append({
            "metric": metric.key, "label": metric.label, "kind": metric.kind,
            "unit": metric.unit, "baseline": b_val, "value": c_val, "delta": delta,
            "delta_pct": delta_pct, "ci_low": su.fnum(lo), "ci_high": su.fnum(hi),
            "ci_method": method,
            "verdict": verdict(metric.kind, su.fnum(lo), su.fnum(hi), margin),
        })
    return rows, paired


def compare_sides(sides: list[list[RunData]], n_boot: int = N_BOOT,
                  confidence: float = CONFIDENCE, seed: int = 0,
                  min_effect_pct: float = MIN_EFFECT_PCT) -> AnalysisResult:
    """Every side after the first against the first (the baseline). A side is a list of
    runs of one configuration (repeats); with several runs on a side, the speed metrics'
    intervals are over runs."""
    if len(sides) < 2 or any(not side for side in sides):
        return AnalysisResult(name="compare", title=TITLE,
                              skipped="needs at least two runs (the first is the baseline)")
    base = _side(sides[0])
    comparisons = []
    findings = []
    for index, runs in enumerate(sides[1:], start=1):
        cand = _side(runs)
        rows, paired = _compare_pair(base, cand, n_boot, confidence, min_effect_pct, seed,
                                     index)
        line = overall(rows)
        comparisons.append({"run": cand.label, "runs": len(runs), "overall": line,
                            "accuracy_paired": paired, "metrics": rows})
        findings.append(f"{cand.label} vs {base.label}: {line}.")
        if not paired and any(r["kind"] == "accuracy" and r["ci_low"] is not None for r in rows):
            findings.append(f"{cand.label} answered a different set of problems than the "
                            "baseline, so its accuracy was compared unpaired.")
        if any(r["ci_method"] == NO_CI_ONE_RUN for r in rows):
            findings.append(f"{cand.label}: a whole-run figure from one run each has no "
                            "confidence interval and no verdict; repeat both sides (or run "
                            f"at least {MIN_BLOCKS}x longer than the longest request) for one.")
    return AnalysisResult(
        name="compare", title=TITLE,
        numbers={"baseline": base.label, "baseline_runs": len(sides[0]), "n_boot": n_boot,
                 "confidence": confidence, "min_effect_pct": min_effect_pct, "seed": seed,
                 "comparisons": comparisons},
        figures=[_figure(comparisons, confidence)],
        findings=findings,
    )


def compare_runs(runs: list[RunData], n_boot: int = N_BOOT, confidence: float = CONFIDENCE,
                 seed: int = 0, min_effect_pct: float = MIN_EFFECT_PCT) -> AnalysisResult:
    """Every run after the first against the first (the baseline), one run per side."""
    return compare_sides([[run] for run in runs], n_boot, confidence, seed, min_effect_pct)


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
                "text": [f"{r['verdict']} (CI: {r['ci_method']})" for r in rows],
            },
        ))
    return Figure("compare-deltas", "Change against the baseline", "bar", "metric",
                  "change (% of baseline)", series,
                  notes=f"bars: run minus baseline in % of the baseline; ci_low / ci_high: "
                        f"{confidence:.0%} interval, made as the hover text says")


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
    """The comparison as a table for ``reasonperf compare`` and the report: one row per
    metric (plus an overall row) per compared side; a "run" column only when there are
    several. The "CI method" column says what each interval resampled."""
    confidence = result.numbers.get("confidence", CONFIDENCE)
    if result.skipped:
        return Table(f"{TITLE}: {result.skipped}", ["metric"], [])
    comps = result.numbers["comparisons"]
    many = len(comps) > 1
    columns = (["run"] if many else []) + ["metric", f"baseline ({result.numbers['baseline']})",
                                           "run" if many else comps[0]["run"], "delta",
                                           f"{confidence:.0%} CI", "CI method", "verdict"]
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
                                _value(r["value"], r["unit"]), delta, ci,
                                r.get("ci_method", ""), r["verdict"]])
        rows.append(lead + ["overall", "", "", "", "", "", comp["overall"]])
    min_effect = result.numbers.get("min_effect_pct")
    title = TITLE if min_effect is None else (
        f"{TITLE} (one run each: a speed verdict needs the whole CI beyond "
        f"+-{min_effect:g} % of the baseline; repeats: beyond 0)")
    return Table(title, columns, rows)


@ANALYSES.register("compare")
def compare(runs: list[RunData]) -> AnalysisResult:
    """Multi-run analysis: deltas of the headline metrics with CIs and verdicts."""
    result = compare_runs(runs)
    if not result.skipped:
        result.tables.append(compare_table(result))
    return result
