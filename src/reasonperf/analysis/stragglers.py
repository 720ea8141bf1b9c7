"""Stragglers: the few slow requests that hold everything else up.

Batch runs (the study's mode) send B requests at once and the next batch only when the
slowest has ended, so one long reasoning chain leaves the engine under-used. Per batch:
- ratio = slowest E2E / median E2E;
- idle fraction = 1 - sum(busy) / (size x wall), where busy = done_s - sent_s of each
  request and wall runs from the batch's scheduled_s to its last done_s: the share of the
  batch's request slots that sat empty while it waited.
Open-loop runs have no batches; their stragglers are the tail (p99 / p50).

The stragglers are the slowest request of each batch (batches of two or more) or, for
other runs, the requests above the E2E p90; they are then set against the rest.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from reasonperf.analysis import stats_util as su
from reasonperf.analysis.base import ANALYSES, AnalysisResult, Figure, RunData, Series, Table
from reasonperf.metrics.request import request_metrics

TITLE = "Straggler requests"
TAIL_QUANTILE = 0.9  # open-loop stragglers: E2E above this quantile
TABLE_ROWS = 20


def is_batch_run(run: RunData) -> bool:
    return ((run.info.get("spec") or {}).get("arrival") or {}).get("name") == "batch"


def batch_stats(scheduled: np.ndarray, sent: np.ndarray, done: np.ndarray
                ) -> dict[str, np.ndarray]:
    """Per-batch arrays (batches = equal scheduled_s), plus each row's batch index.

    Rows without scheduled_s, sent_s or done_s are left out (batch index -1).
    """
    e2e = done - sent
    keep = np.isfinite(scheduled) & np.isfinite(e2e)
    batch_of = np.full(len(scheduled), -1, dtype=np.int64)
    starts_s, inverse = np.unique(scheduled[keep], return_inverse=True)
    batch_of[keep] = inverse
    nb = len(starts_s)
    size = np.bincount(inverse, minlength=nb)
    busy = np.bincount(inverse, weights=e2e[keep], minlength=nb)
    last_done = np.full(nb, -np.inf)
    np.maximum.at(last_done, inverse, done[keep])
    slowest = np.full(nb, -np.inf)
    np.maximum.at(slowest, inverse, e2e[keep])
    median = su.group_quantile(e2e[keep], inverse, nb, 0.5)
    wall = last_done - starts_s
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = slowest / median
        idle = 1.0 - busy / (size * wall)
    return {
        "batch_of": batch_of,
        "start_s": starts_s,
        "size": size,
        "wall_s": wall,
        "busy_s": busy,
        "median_e2e": median,
        "max_e2e": slowest,
        "ratio": np.where(median > 0, ratio, np.nan),
        "idle_fraction": np.where(wall > 0, idle, np.nan),
    }


def _slowest_per_batch(e2e: np.ndarray, batch_of: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Mask of the slowest request of each batch of two or more (the first one on ties)."""
    rows = np.flatnonzero(batch_of >= 0)
    order = rows[np.lexsort((-e2e[rows], batch_of[rows]))]
    first = np.ones(len(order), dtype=bool)
    first[1:] = batch_of[order][1:] != batch_of[order][:-1]
    mask = np.zeros(len(e2e), dtype=bool)
    top = order[first]
    mask[top[size[batch_of[top]] >= 2]] = True
    return mask


def _tail(values: np.ndarray) -> dict[str, float | None]:
    p50, p99 = su.quantile(values, 0.5), su.quantile(values, 0.99)
    return {"p50": p50, "p99": p99, "p99_over_p50": su.ratio(p99, p50)}


def _profile(requests: pa.Table, e2e: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """What a set of requests looks like: the columns stragglers are compared on."""
    reasoning = su.num(requests, "reasoning_tokens")[mask]
    completion = su.num(requests, "completion_tokens")[mask]
    correct = su.num(requests, "correct")[mask]
    labels, inverse, counts = np.unique(su.text(requests, "difficulty")[mask],
                                        return_inverse=True, return_counts=True)
    level_values = np.array([su.as_number(v) for v in labels], dtype=np.float64)
    numeric = level_values[inverse] if len(labels) else np.empty(0)
    top = int(np.argmax(counts)) if len(counts) else None
    return {
        "n": int(mask.sum()),
        "e2e_mean": su.mean(e2e[mask]),
        "reasoning_tokens_mean": su.mean(reasoning),
        "completion_tokens_mean": su.mean(completion),
        "truncation_rate": su.mean(su.truncated_flags(requests)[mask]),
        "accuracy": su.mean(correct),
        "difficulty_mean": su.mean(numeric),
        "difficulty_mode": str(labels[top]) if top is not None else None,
        "difficulty_mode_share": float(counts[top] / counts.sum()) if top is not None else None,
    }


def analyze_stragglers(run: RunData) -> AnalysisResult:
    ok = su.ok_rows(run.requests)
    if ok.num_rows < 2:
        return AnalysisResult(name="stragglers", title=TITLE,
                              skipped="needs at least two successful requests")
    m = request_metrics(ok)
    e2e = m["e2e"]
    numbers: dict[str, Any] = {
        "mode": "batch" if is_batch_run(run) else "open",
        "e2e_tail": _tail(e2e),
        "completion_tokens_tail": _tail(su.num(ok, "completion_tokens")),
    }
    tables: list[Table] = []
    figures: list[Figure] = []
    findings: list[str] = []
    batch_of = np.full(ok.num_rows, -1)
    if numbers["mode"] == "batch":
        b = batch_stats(su.num(ok, "scheduled_s"), su.num(ok, "sent_s"), su.num(ok, "done_s"))
        batch_of = b["batch_of"]
        stragglers = _slowest_per_batch(e2e, batch_of, b["size"])
        numbers["batches"] = _batch_numbers(b)
        tables.append(_batch_table(b))
        figures.extend(_batch_figures(b))
        findings.extend(_batch_findings(numbers["batches"]))
    else:
        cut = su.quantile(e2e, TAIL_QUANTILE)
        stragglers = np.isfinite(e2e) & (e2e > cut) if cut is not None else \
            np.zeros(len(e2e), dtype=bool)
        t = numbers["e2e_tail"]
        if t["p99_over_p50"] is not None:
            findings.append(
                f"E2E p99 is {t['p99_over_p50']:.1f}x the median ({t['p99']:.2f} s vs "
                f"{t['p50']:.2f} s); output tokens p99/p50 = "
                f"{_fmt(numbers['completion_tokens_tail']['p99_over_p50'])}x."
            )
    others = np.isfinite(e2e) & ~stragglers
    numbers["rule"] = ("slowest request of each batch" if numbers["mode"] == "batch"
                       else f"E2E above p{TAIL_QUANTILE * 100:.0f}")
    numbers["stragglers"] = _profile(ok, e2e, stragglers)
    numbers["others"] = _profile(ok, e2e, others)
    ids = np.asarray(ok.column("request_id").to_pylist(), dtype=object)
    worst = np.flatnonzero(stragglers)[np.argsort(-e2e[stragglers], kind="stable")]
    numbers["straggler_request_ids"] = [str(i) for i in ids[worst[:100]]]
    tables.append(_comparison_table(numbers["stragglers"], numbers["others"]))
    tables.append(_straggler_table(ok, e2e, worst[:TABLE_ROWS], batch_of))
    figures.append(_scatter(ok, e2e, stragglers))
    findings.extend(_common_findings(numbers["stragglers"], numbers["others"]))
    return AnalysisResult(name="stragglers", title=TITLE, numbers=numbers, tables=tables,
                          figures=figures, findings=findings)


def _fmt(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _batch_numbers(b: dict[str, np.ndarray]) -> dict[str, Any]:
    multi = b["size"] >= 2
    slots = float((b["size"] * b["wall_s"]).sum())
    return {
        "count": len(b["size"]),
        "size_max": int(b["size"].max()) if len(b["size"]) else 0,
        "ratio_median": su.quantile(b["ratio"][multi], 0.5),
        "ratio_mean": su.mean(b["ratio"][multi]),
        "ratio_max": su.fnum(np.nanmax(b["ratio"][multi])) if multi.any() else None,
        "idle_fraction_mean": su.mean(b["idle_fraction"]),
        "idle_fraction_median": su.quantile(b["idle_fraction"], 0.5),
        # all batches pooled: the share of every request slot over the run left empty
        "idle_fraction_overall": su.fnum(1.0 - b["busy_s"].sum() / slots) if slots > 0 else None,
        "wall_s_total": su.fnum(b["wall_s"].sum()),
    }


def _batch_table(b: dict[str, np.ndarray]) -> Table:
    order = np.argsort(-np.nan_to_num(b["ratio"], nan=-1.0), kind="stable")[:TABLE_ROWS]
    rows = [[int(i), int(b["size"][i]), su.fnum(b["start_s"][i]), su.fnum(b["wall_s"][i]),
             su.fnum(b["median_e2e"][i]), su.fnum(b["max_e2e"][i]), su.fnum(b["ratio"][i]),
             su.fnum(b["idle_fraction"][i])] for i in order]
    title = "Batches, worst slowest/median ratio first"
    if len(b["size"]) > TABLE_ROWS:
        title += f" (top {TABLE_ROWS} of {len(b['size'])})"
    return Table(title, ["batch", "size", "start (s)", "wall (s)", "median E2E (s)",
                         "max E2E (s)", "max / median", "idle fraction"], rows)


def _batch_figures(b: dict[str, np.ndarray]) -> list[Figure]:
    idx = su.thin(len(b["size"]))
    x = [int(i) for i in idx]
    return [
        Figure("stragglers-ratio", "Slowest / median E2E per batch", "bar", "batch",
               "slowest / median", [Series("ratio", x, su.tolist(b["ratio"][idx]))]),
        Figure("stragglers-idle", "Idle fraction per batch", "bar", "batch",
               "idle fraction of request slots",
               [Series("idle fraction", x, su.tolist(b["idle_fraction"][idx]))],
               notes="1 - sum(request busy time) / (batch size x batch wall time)"),
    ]


def _batch_findings(n: dict[str, Any]) -> list[str]:
    if n["ratio_median"] is None:
        return ["Every batch held a single request: no straggler effect to measure."]
    return [
        f"In the median batch the slowest request took {n['ratio_median']:.1f}x the batch "
        f"median (worst batch {n['ratio_max']:.1f}x).",
        f"While batches waited for their slowest request, {100 * n['idle_fraction_overall']:.0f} % "
        "of the request slots sat idle.",
    ]


def _comparison_table(s: dict[str, Any], o: dict[str, Any]) -> Table:
    keys = [("requests", "n"), ("mean E2E (s)", "e2e_mean"),
            ("mean reasoning tokens", "reasoning_tokens_mean"),
            ("mean completion tokens", "completion_tokens_mean"),
            ("truncation rate", "truncation_rate"), ("accuracy", "accuracy"),
            ("mean difficulty", "difficulty_mean"), ("most common difficulty", "difficulty_mode")]
    return Table("Stragglers vs the rest", ["", "stragglers", "others"],
                 [[label, s[k], o[k]] for label, k in keys])


def _straggler_table(ok: pa.Table, e2e: np.ndarray, rows: np.ndarray, batch_of: np.ndarray
                     ) -> Table:
    cols = {c: ok.column(c).take(pa.array(rows, type=pa.int64())).to_pylist()
            for c in ("request_id", "difficulty", "reasoning_tokens", "completion_tokens",
                      "finish_reason")}
    out = []
    for j, i in enumerate(rows):
        out.append([cols["request_id"][j], int(batch_of[i]) if batch_of[i] >= 0 else None,
                    su.fnum(e2e[i]), cols["difficulty"][j], cols["reasoning_tokens"][j],
                    cols["completion_tokens"][j], cols["finish_reason"][j]])
    return Table("Slowest stragglers", ["request", "batch", "E2E (s)", "difficulty",
                                        "reasoning tokens", "completion tokens", "finish"], out)


def _scatter(ok: pa.Table, e2e: np.ndarray, stragglers: np.ndarray) -> Figure:
    tokens = su.num(ok, "reasoning_tokens")
    label = "reasoning tokens"
    if not np.isfinite(tokens).any():
        tokens, label = su.num(ok, "completion_tokens"), "completion tokens"
    series = []
    for name, mask in (("others", ~stragglers), ("stragglers", stragglers)):
        rows = np.flatnonzero(mask & np.isfinite(e2e))
        rows = rows[su.thin(len(rows))]
        series.append(Series(name, su.tolist(tokens[rows]), su.tolist(e2e[rows])))
    return Figure("stragglers-scatter", f"E2E against {label}", "scatter", label, "E2E (s)",
                  series)


def _common_findings(s: dict[str, Any], o: dict[str, Any]) -> list[str]:
    out = []
    rs, ro = s["reasoning_tokens_mean"], o["reasoning_tokens_mean"]
    if rs is not None and ro:
        out.append(f"Stragglers reasoned {rs / ro:.1f}x as long as the others "
                   f"(mean {rs:,.0f} vs {ro:,.0f} reasoning tokens).")
    ts, to = s["truncation_rate"], o["truncation_rate"]
    if ts is not None and to is not None:
        out.append(f"{100 * ts:.0f} % of stragglers hit max_tokens, against {100 * to:.0f} % "
                   "of the others.")
    ds, do = s["difficulty_mean"], o["difficulty_mean"]
    if ds is not None and do is not None:
        out.append(f"Their mean difficulty level is {ds:.1f} against {do:.1f}.")
    elif s["difficulty_mode"] not in (None, su.UNKNOWN):
        out.append(f"The most common difficulty among them is {s['difficulty_mode']} "
                   f"({100 * s['difficulty_mode_share']:.0f} %).")
    acc_s, acc_o = s["accuracy"], o["accuracy"]
    if acc_s is not None and acc_o is not None:
        out.append(f"Their accuracy is {100 * acc_s:.0f} % against {100 * acc_o:.0f} %.")
    return out


@ANALYSES.register("stragglers")
def stragglers(runs: list[RunData]) -> AnalysisResult:
    """Single-run analysis: per-batch straggler ratio and idle capacity, or the tail."""
    (run,) = runs
    return analyze_stragglers(run)
