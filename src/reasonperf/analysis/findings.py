"""The findings table: each finding of the study, what the study reported, what these runs
measured, and a verdict (holds / does not hold / not measurable here, and why).

A finding is one small declaration (:class:`Finding`): an id, the claim, the study's own
words and numbers, and a function of the runs that returns a :class:`FindingRow`. Runs
are split into RLLM runs (most ok requests carry reasoning tokens) and LLM runs (none
do), so a study that pits a reasoning model against an instruct model, or any set of
stored runs, gets the same table.

Statistics (why they are done this way): every verdict rests on a 95 % interval, and a
finding holds only when the interval excludes "no effect" in the direction the study
reported. Samples that are not independent are resampled in the units that are:
time series of KV usage by circular blocks (autocorrelated samples), batch statistics by
batch, accuracy by problem, per-request trends by problem. ``analysis.compare`` uses the
same rules for its verdicts, and its arm comparisons are reused as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reasonperf.analysis import stats_util as su
from reasonperf.analysis.base import ANALYSES, AnalysisResult, RunData, Table
from reasonperf.analysis.budget import max_tokens_of
from reasonperf.analysis.difficulty import level_labels
from reasonperf.analysis.stragglers import batch_stats, is_batch_run
from reasonperf.metrics.request import request_metrics
from reasonperf.telemetry import names

TITLE = "Findings of the study, measured here"
HOLDS = "holds"
FAILS = "does not hold"
UNMEASURABLE = "not measurable"
N_BOOT = 2000
CONFIDENCE = 0.95
REASONING_SHARE = 0.5  # a run is an RLLM run when this share of its ok requests reasons
STRAGGLER_RATIO = 1.5  # a batch's slowest request at least this x its median E2E
MIN_BATCHES = 3
MIN_SAMPLES = 10  # KV samples per side


@dataclass
class FindingRow:
    id: str
    finding: str
    reported: str
    measured: str
    verdict: str
    why: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    id: str
    claim: str
    reported: str  # the study's own words and numbers
    evaluate: Callable[[FindingData], tuple[str, str, str, dict[str, Any]]]

    def row(self, data: FindingData) -> FindingRow:
        measured, verdict, why, numbers = self.evaluate(data)
        return FindingRow(self.id, self.claim, self.reported, measured, verdict, why, numbers)


@dataclass
class FindingData:
    """The runs, split by whether the model reasoned, plus the study's arm comparisons."""

    rllm: list[RunData]
    llm: list[RunData]
    arms: list[AnalysisResult] = field(default_factory=list)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))


def reasons(run: RunData) -> bool | None:
    """True when most ok requests carry reasoning tokens; None when nothing tells."""
    ok = su.ok_rows(run.requests)
    r = su.num(ok, "reasoning_tokens")
    r = r[np.isfinite(r)]
    if len(r) == 0:
        return None
    return bool((r > 0).mean() >= REASONING_SHARE)


def split_runs(runs: Sequence[RunData]) -> tuple[list[RunData], list[RunData]]:
    rllm = [r for r in runs if reasons(r) is True]
    llm = [r for r in runs if reasons(r) is False]
    return rllm, llm


# --------------------------------------------------------------------------- statistics


def interval(reps: np.ndarray) -> tuple[float | None, float | None]:
    return su.percentile_ci(reps, CONFIDENCE)


def block_length(n: int) -> int:
    """Circular block bootstrap block length: n^(1/3), the rate that keeps the variance of
    a mean of an autocorrelated series consistent (Hall, Horowitz and Jing, 1995)."""
    return max(1, round(n ** (1 / 3)))


def block_bootstrap(values: np.ndarray, stat: Callable[[np.ndarray], np.ndarray],
                    rng: np.random.Generator, n_boot: int = N_BOOT) -> np.ndarray:
    """Replicates of ``stat`` (applied row-wise to a 2-D array of resampled series) under
    the circular block bootstrap."""
    v = su.finite(values)
    n = len(v)
    if n == 0:
        return np.full(n_boot, np.nan)
    b = block_length(n)
    k = math.ceil(n / b)
    starts = rng.integers(0, n, size=(n_boot, k))
    idx = (starts[:, :, None] + np.arange(b)[None, None, :]).reshape(n_boot, -1)[:, :n] % n
    return stat(v[idx])


def _mean_rows(x: np.ndarray) -> np.ndarray:
    return np.asarray(x.mean(axis=1))


def _swing_rows(x: np.ndarray) -> np.ndarray:
    """The p5-p95 range of each resampled series: how far usage swings."""
    q = np.quantile(x, [0.05, 0.95], axis=1)
    return np.asarray(q[1] - q[0])


def _swing(x: np.ndarray) -> float:
    return float(_swing_rows(x[None, :])[0])


def directional(lo: float | None, hi: float | None, expect_positive: bool = True) -> str:
    """holds when the interval of the effect excludes zero on the side the study reported."""
    if lo is None or hi is None:
        return UNMEASURABLE
    if (lo > 0) if expect_positive else (hi < 0):
        return HOLDS
    return FAILS


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f} %"


def _num(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _ci(lo: float | None, hi: float | None, fmt: Callable[[float | None], str]) -> str:
    return f"95 % CI [{fmt(lo)}, {fmt(hi)}]"


def _kv_series(runs: Sequence[RunData]) -> np.ndarray:
    parts = [su.series(r.timeline, names.KV_CACHE_USAGE)[1] for r in runs]
    return su.finite(np.concatenate(parts)) if parts else np.empty(0)


def _why_runs(data: FindingData) -> str | None:
    if not data.rllm:
        return "needs a run of a reasoning model (no run here has reasoning tokens)"
    if not data.llm:
        return "needs a run of a non-reasoning model to set against (all runs reason)"
    return None


# --------------------------------------------------------------------------- findings


def kv_level(data: FindingData) -> tuple[str, str, str, dict[str, Any]]:
    missing = _why_runs(data)
    if missing:
        return "", UNMEASURABLE, missing, {}
    a, b = _kv_series(data.rllm), _kv_series(data.llm)
    if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
        return "", UNMEASURABLE, (f"needs >= {MIN_SAMPLES} KV-usage samples per side from the "
                                  f"engine's /metrics (have {len(a)} and {len(b)})"), {}
    diff = block_bootstrap(a, _mean_rows, data.rng) - block_bootstrap(b, _mean_rows, data.rng)
    lo, hi = interval(diff)
    measured = (f"mean KV usage RLLM {_pct(a.mean())} vs LLM {_pct(b.mean())} "
                f"(difference {_ci(lo, hi, _pct)}; {len(a)} and {len(b)} samples)")
    verdict = directional(lo, hi)
    why = ("the RLLM holds more of the KV cache" if verdict == HOLDS
           else "no clearly higher KV usage for the RLLM")
    return measured, verdict, why, {"rllm_mean": float(a.mean()), "llm_mean": float(b.mean()),
                                    "diff_ci": [lo, hi]}


def kv_swing(data: FindingData) -> tuple[str, str, str, dict[str, Any]]:
    missing = _why_runs(data)
    if missing:
        return "", UNMEASURABLE, missing, {}
    a, b = _kv_series(data.rllm), _kv_series(data.llm)
    if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
        return "", UNMEASURABLE, f"needs >= {MIN_SAMPLES} KV-usage samples per side", {}
    diff = block_bootstrap(a, _swing_rows, data.rng) - block_bootstrap(b, _swing_rows, data.rng)
    lo, hi = interval(diff)
    qa, qb = np.quantile(a, [0.05, 0.95]), np.quantile(b, [0.05, 0.95])
    measured = (f"KV usage p5-p95: RLLM {_pct(qa[0])}-{_pct(qa[1])}, LLM {_pct(qb[0])}-"
                f"{_pct(qb[1])} (swing difference {_ci(lo, hi, _pct)})")
    verdict = directional(lo, hi)
    why = ("the RLLM's usage swings further" if verdict == HOLDS
           else "no clearly wider swing for the RLLM")
    return measured, verdict, why, {"rllm_swing": _swing(a), "llm_swing": _swing(b),
                                    "diff_ci": [lo, hi]}


def stragglers(data: FindingData) -> tuple[str, str, str, dict[str, Any]]:
    batch_runs = [r for r in data.rllm if is_batch_run(r)]
    if not batch_runs:
        return "", UNMEASURABLE, "needs an RLLM run with batch arrivals (the study's mode)", {}
    ratios, idle = [], []
    for run in batch_runs:
        ok = su.ok_rows(run.requests)
        b = batch_stats(su.num(ok, "scheduled_s"), su.num(ok, "sent_s"), su.num(ok, "done_s"))
        multi = b["size"] > 1
        ratios.append(b["ratio"][multi])
        idle.append(b["idle_fraction"][multi])
    ratio, idle_f = su.finite(np.concatenate(ratios)), su.finite(np.concatenate(idle))
    if len(ratio) < MIN_BATCHES:
        return "", UNMEASURABLE, f"needs >= {MIN_BATCHES} batches of two or more requests", {}
    reps = su.bootstrap_quantile(ratio, 0.5, N_BOOT, data.rng)
    lo, hi = interval(reps)
    med = float(np.median(ratio))
    measured = (f"median batch: slowest request {med:.2f}x the batch median E2E "
                f"({_ci(lo, hi, _num)}, {len(ratio)} batches); "
                f"request slots idle {_pct(float(idle_f.mean()) if len(idle_f) else None)}")
    verdict = HOLDS if lo is not None and lo > STRAGGLER_RATIO else FAILS
    why = (f"the interval lies above {STRAGGLER_RATIO}x: a few long requests hold each batch"
           if verdict == HOLDS else f"the interval reaches down to {STRAGGLER_RATIO}x or below")
    return measured, verdict, why, {"ratio_median": med, "ratio_ci": [lo, hi],
                                    "idle_fraction_mean": su.mean(idle_f)}


def _level_ranks(run: RunData) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(rank of each ok row's level, its E2E, its problem key, the ordered levels)."""
    ok = su.ok_rows(run.requests)
    labels = level_labels(ok).astype(str)
    order = su.sort_levels(sorted(set(labels)))
    rank = np.array([order.index(lab) for lab in labels], dtype=np.float64)
    return rank, request_metrics(ok)["e2e"], su.problem_keys(ok), order


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan")
    return float(np.polyfit(x, y, 1)[0])


def difficulty_time(data: FindingData) -> tuple[str, str, str, dict[str, Any]]:
    if not data.rllm:
        return "", UNMEASURABLE, "needs a run of a reasoning model", {}
    slopes, lows, highs, level_sets = [], [], [], []
    for run in data.rllm:
        rank, e2e, keys, order = _level_ranks(run)
        if len(order) < 2:
            continue
        # resample problems, not requests: samples of one problem share its difficulty
        uniq, inverse = np.unique(keys, return_inverse=True)
        groups = [np.flatnonzero(inverse == i) for i in range(len(uniq))]
        reps = np.empty(N_BOOT // 4)
        for j in range(len(reps)):
            pick = np.concatenate([groups[i] for i in data.rng.integers(0, len(groups), len(groups))])
            reps[j] = _slope(rank[pick], e2e[pick])
        lo, hi = interval(reps)
        slopes.append(_slope(rank, e2e))
        lows.append(lo)
        highs.append(hi)
        level_sets.append(order)
    if not slopes:
        return "", UNMEASURABLE, "needs an RLLM run with two or more difficulty levels", {}
    i = int(np.argmax([len(s) for s in level_sets]))
    lo, hi = lows[i], highs[i]
    measured = (f"E2E rises {_num(slopes[i])} s per level over levels "
                f"{', '.join(level_sets[i])} ({_ci(lo, hi, _num)}, problems resampled)")
    verdict = directional(lo, hi)
    why = ("harder problems take longer" if verdict == HOLDS
           else "no clear rise of running time with difficulty")
    return measured, verdict, why, {"slope_s_per_level": slopes[i], "slope_ci": [lo, hi],
                                    "levels": level_sets[i]}


def _accuracy_by(runs: Sequence[RunData], column: str) -> dict[str, np.ndarray]:
    """Per value of ``column`` (domain): per-problem accuracy vector over the runs."""
    out: dict[str, list[np.ndarray]] = {}
    for run in runs:
        ok = su.ok_rows(run.requests)
        values = su.text(ok, column)
        for value in sorted(set(values.tolist())):
            _, acc = su.per_problem_accuracy(ok.filter(values == value))
            out.setdefault(value, []).append(acc)
    return {k: np.concatenate(v) for k, v in out.items() if v}


def domain_preference(data: FindingData) -> tuple[str, str, str, dict[str, Any]]:
    missing = _why_runs(data)
    if missing:
        return "", UNMEASURABLE, missing, {}
    r_acc, l_acc = _accuracy_by(data.rllm, "domain"), _accuracy_by(data.llm, "domain")
    domains = sorted(d for d in set(r_acc) & set(l_acc) if len(r_acc[d]) and len(l_acc[d]))
    if len(domains) < 2:
        return "", UNMEASURABLE, "needs graded RLLM and LLM runs over two or more domains", {}
    gains = {}
    reps = {}
    for d in domains:
        ra = su.bootstrap_mean(r_acc[d], N_BOOT, data.rng)
        la = su.bootstrap_mean(l_acc[d], N_BOOT, data.rng)
        gains[d] = float(r_acc[d].mean() - l_acc[d].mean())
        reps[d] = ra - la
    best, worst = max(gains, key=lambda d: gains[d]), min(gains, key=lambda d: gains[d])
    lo, hi = interval(reps[best] - reps[worst])
    measured = ("accuracy gain of the RLLM over the LLM: "
                + ", ".join(f"{d} {gains[d] * 100:+.1f} pts" for d in domains)
                + f" (gap {best} vs {worst}: {_ci(lo, hi, lambda x: _num(None if x is None else x * 100))} pts)")
    verdict = directional(lo, hi)
    why = (f"the RLLM gains more on {best} than on {worst}" if verdict == HOLDS
           else "the gains do not differ clearly between domains")
    return measured, verdict, why, {"gain_by_domain": gains, "gap_ci": [lo, hi]}


def _budget_points(runs: Sequence[RunData]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """max_tokens -> (per-problem accuracy, per-request truncation flags)."""
    out: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for run in runs:
        budget = max_tokens_of(run)
        if budget is None:
            continue
        ok = su.ok_rows(run.requests)
        _, acc = su.per_problem_accuracy(ok)
        acc_list, trunc_list = out.setdefault(budget, ([], []))
        acc_list.append(acc)
        trunc_list.append(su.finite(su.truncated_flags(ok)))
    return {b: (np.concatenate(a), np.concatenate(t)) for b, (a, t) in out.items()}


def budget_curves(data: FindingData) -> tuple[str, str, str, dict[str, Any]]:
    points = _budget_points(data.rllm)
    if len(points) < 2:
        return "", UNMEASURABLE, "needs RLLM runs at two or more max_tokens budgets", {}
    lo_b, hi_b = min(points), max(points)
    (acc_lo, tr_lo), (acc_hi, tr_hi) = points[lo_b], points[hi_b]
    if not (len(acc_lo) and len(acc_hi)):
        return "", UNMEASURABLE, "needs graded runs (accuracy) at each budget", {}
    d_acc = (su.bootstrap_mean(acc_hi, N_BOOT, data.rng)
             - su.bootstrap_mean(acc_lo, N_BOOT, data.rng))
    d_tr = su.bootstrap_mean(tr_hi, N_BOOT, data.rng) - su.bootstrap_mean(tr_lo, N_BOOT, data.rng)
    a_lo, a_hi = interval(d_acc)
    t_lo, t_hi = interval(d_tr)
    curve = ", ".join(f"{b}: acc {_pct(float(points[b][0].mean()) if len(points[b][0]) else None)}"
                      f" trunc {_pct(float(points[b][1].mean()) if len(points[b][1]) else None)}"
                      for b in sorted(points))
    measured = (f"{curve}; from {lo_b} to {hi_b} tokens accuracy {_ci(a_lo, a_hi, _pct)}, "
                f"truncation {_ci(t_lo, t_hi, _pct)}")
    acc_up, trunc_down = directional(a_lo, a_hi), directional(t_lo, t_hi, expect_positive=False)
    verdict = HOLDS if acc_up == HOLDS and trunc_down == HOLDS else FAILS
    if verdict == HOLDS:
        why = "a larger budget raises accuracy and cuts truncation"
    elif trunc_down == HOLDS:
        why = "truncation falls with the budget, but accuracy does not clearly rise"
    else:
        why = "truncation does not clearly fall with the budget"
    return measured, verdict, why, {"accuracy_diff_ci": [a_lo, a_hi],
                                    "truncation_diff_ci": [t_lo, t_hi],
                                    "budgets": sorted(points)}


FINDINGS: tuple[Finding, ...] = (
    Finding("kv_level", "KV-cache usage: the RLLM holds far more than the LLM",
            "avg KV usage 56.6 % (RLLM) vs 13.2 % (LLM) under Gamma arrivals on MATH-500",
            kv_level),
    Finding("kv_swing", "KV-cache usage swings widely for the RLLM, stays flat for the LLM",
            "RLLM KV usage swings 3 %-70 % within a batch; the LLM stays under 3 %",
            kv_swing),
    Finding("stragglers", "Straggler requests: a few long reasonings hold each batch",
            "in batches of 16, a few very long reasoning requests keep the batch running long "
            "after most of it has finished, leaving the engine under-used", stragglers),
    Finding("difficulty", "Running time adapts to difficulty",
            "the RLLM spends more time (more reasoning tokens) on harder problems: "
            "GSM8K < MATH-500 < AIME", difficulty_time),
    Finding("domain", "Domain preference",
            "the RLLM gains most over the LLM on math and less on knowledge reasoning (GPQA)",
            domain_preference),
    Finding("budget", "Accuracy and truncation against the token budget",
            "accuracy rises and truncation falls as max_tokens grows, until it saturates",
            budget_curves),
)

@dataclass(frozen=True)
class ArmClaim:
    """What the study reported for one kind of optimisation arm, and the speed verdicts of
    ``compare`` that agree with it."""

    word: str  # matched against the arm's title (the study axis name)
    reported: str
    agrees: frozenset[str]


ARM_CLAIMS: tuple[ArmClaim, ...] = (
    ArmClaim("prefix", "prefix caching may degrade serving performance for small RLLMs "
             "(no reliable gain)", frozenset({"slower", "same speed"})),
    ArmClaim("kv", "KV-cache quantization may degrade accuracy or serving performance for "
             "small RLLMs", frozenset({"slower", "same speed"})),
    ArmClaim("quant", "weight quantization improves serving efficiency with a small "
             "accuracy cost", frozenset({"faster"})),
    ArmClaim("spec", "speculative decoding improves serving efficiency with a small "
             "accuracy cost", frozenset({"faster"})),
)
COMPARED = ("output_tps", "e2e_p50", "ttfvt_p50", "accuracy")


def _arm_claim(title: str) -> ArmClaim | None:
    low = title.lower()
    return next((c for c in ARM_CLAIMS if c.word in low), None)


def arm_rows(arms: Sequence[AnalysisResult]) -> list[FindingRow]:
    """One row per arm comparison (``analysis.compare`` results, reused as they are, so
    the verdicts use exactly compare's statistics)."""
    rows = []
    for result in arms:
        if result.skipped:
            continue
        claim = _arm_claim(result.title)
        for comp in result.numbers.get("comparisons") or []:
            metrics = {m.get("metric"): m for m in comp.get("metrics", [])}
            parts = [f"{metrics[k].get('label', k)}: {metrics[k].get('verdict', 'n/a')}"
                     for k in COMPARED if k in metrics]
            overall = str(comp.get("overall") or "n/a")
            speed = overall.split(",")[0].strip()
            if claim is None:
                reported, verdict = "the study makes no claim for this arm", UNMEASURABLE
                why = f"measured only: {overall}"
            elif speed in ("speed n/a", "n/a") or "no CI" in speed:
                reported, verdict = claim.reported, UNMEASURABLE
                why = f"compare gives no speed verdict ({overall})"
            else:
                reported = claim.reported
                verdict = HOLDS if speed in claim.agrees else FAILS
                why = f"compare: {overall}"
            rows.append(FindingRow(f"arm:{result.title}:{comp.get('run')}",
                                   f"{result.title} ({comp.get('run')})", reported,
                                   "; ".join(parts) or "no comparable metric", verdict, why))
    return rows


def findings_rows(runs: Sequence[RunData], arms: Sequence[AnalysisResult] = (),
                  seed: int = 0) -> list[FindingRow]:
    rllm, llm = split_runs(runs)
    data = FindingData(rllm, llm, list(arms), np.random.default_rng(seed))
    return [f.row(data) for f in FINDINGS] + arm_rows(arms)


def findings_table(rows: Sequence[FindingRow]) -> Table:
    return Table("Findings", ["finding", "the study reported", "measured here", "verdict", "why"],
                 [[r.finding, r.reported, r.measured or "-", r.verdict, r.why] for r in rows])


def analyze_findings(runs: list[RunData], arms: Sequence[AnalysisResult] = ()) -> AnalysisResult:
    rows = findings_rows(runs, arms)
    rllm, llm = split_runs(runs)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    return AnalysisResult(
        name="findings",
        title=TITLE,
        numbers={"rllm_runs": len(rllm), "llm_runs": len(llm), **counts,
                 "rows": {r.id: {"verdict": r.verdict, **r.numbers} for r in rows}},
        tables=[findings_table(rows)],
        findings=[f"{r.finding}: {r.verdict} ({r.why})." for r in rows],
    )


@ANALYSES.register("findings")
def findings(runs: list[RunData]) -> AnalysisResult:
    return analyze_findings(runs)
