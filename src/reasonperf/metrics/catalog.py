"""The metric catalogue: one declaration per metric (name, label, unit, definition,
direction, the function that computes it), in the spirit of AIPerf's one class per metric.

The summary, the console / HTML / markdown reports, ``compare`` and docs/metrics.md
(``python -m reasonperf.metrics.docs``) all read names, units, definitions and
directions from here, so a metric means one thing everywhere.

Compute signatures by scope:
- "request": ``f(requests) -> array`` aligned with the rows (NaN where undefined; ``needs``
  says why a request has no value);
- "token": ``f(chunks) -> (values, info)`` (ITL: one value per token);
- "run": ``f(requests, segments, slo) -> float | None`` over the whole run (all rows given;
  the function picks the ok ones);
- "accuracy": ``f(requests) -> float | None`` over graded rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reasonperf.metrics import request as rq
from reasonperf.metrics import throughput as tp
from reasonperf.metrics.request import Needs

Direction = Literal["lower", "higher"]
Group = Literal["latency", "throughput", "accuracy"]
Scope = Literal["request", "token", "run", "accuracy"]


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    label: str
    unit: str
    definition: str
    direction: Direction  # which way is better
    group: Group
    scope: Scope
    compute: Callable[..., Any]
    needs: tuple[Needs, ...] = ()  # per-request inputs, with the words for a missing one


SENT = Needs("sent_s", "not sent")
FIRST = Needs("first_token_s", "no token")
VISIBLE = Needs("first_visible_s", "no visible token")
REASONED = Needs("reasoning_end_s", "no reasoning")
DONE = Needs("done_s", "no end of stream")


def _ok(requests: pa.Table) -> pa.Table:
    if requests.num_rows == 0:
        return requests
    ok = pc.fill_null(pc.equal(requests.column("status"), "ok"), False)
    if pc.all(ok).as_py():  # no copy of a big table when every request ended ok
        return requests
    return requests.filter(ok)


def slo_mask(metrics: dict[str, np.ndarray], slo: dict[str, float]) -> np.ndarray:
    """True where a request meets every SLO given (a missing metric fails the SLO)."""
    n = len(next(iter(metrics.values()))) if metrics else 0
    ok = np.ones(n, dtype=bool)
    for name, limit in slo.items():
        vals = metrics[name]
        ok &= np.isfinite(vals) & (vals <= limit)
    return ok


def _run(fn: Callable[[pa.Table, Sequence[dict[str, Any]] | None], float | None]
         ) -> Callable[[pa.Table, Sequence[dict[str, Any]] | None, dict[str, float]], float | None]:
    def compute(requests: pa.Table, segments: Sequence[dict[str, Any]] | None = None,
                slo: dict[str, float] | None = None) -> float | None:
        return fn(_ok(requests), segments)
    compute.__doc__ = fn.__doc__
    return compute


def goodput(requests: pa.Table, segments: Sequence[dict[str, Any]] | None = None,
            slo: dict[str, float] | None = None) -> float | None:
    ok = _ok(requests)
    if not slo or not ok.num_rows:
        return None
    meets = slo_mask(request_metrics(ok), slo)
    return tp.rate(float(meets.sum()), tp.windows(ok, segments).total_s)


def correct_goodput(requests: pa.Table, segments: Sequence[dict[str, Any]] | None = None,
                    slo: dict[str, float] | None = None) -> float | None:
    ok = _ok(requests)
    if not slo or not ok.num_rows or ok.column("correct").null_count == ok.num_rows:
        return None
    meets = slo_mask(request_metrics(ok), slo)
    correct = pc.fill_null(ok.column("correct"), False).to_numpy(zero_copy_only=False)
    return tp.rate(float((meets & correct.astype(bool)).sum()), tp.windows(ok, segments).total_s)


def slo_attainment(requests: pa.Table, segments: Sequence[dict[str, Any]] | None = None,
                   slo: dict[str, float] | None = None) -> float | None:
    if not slo or requests.num_rows == 0:
        return None
    ok = _ok(requests)
    met = int(slo_mask(request_metrics(ok), slo).sum()) if ok.num_rows else 0
    return met / requests.num_rows


def truncated_flags(requests: pa.Table) -> np.ndarray:
    """1.0 / 0.0 per request, NaN when unknown: the grader's ``truncated`` column when
    set, else the grader's own rule applied to the row (grading.is_truncated), so an
    ungraded run and a graded one call the same requests truncated."""
    from reasonperf.grading.grade_run import is_truncated

    graded = rq.col(requests, "truncated")
    out = graded.copy()
    todo = np.flatnonzero(np.isnan(graded))
    if len(todo):
        cols = [c for c in ("finish_reason", "answer_text", "reasoning_text")
                if c in requests.column_names]
        for start in range(0, len(todo), 4096):  # a slice at a time, never the run
            part = todo[start:start + 4096]
            rows = requests.select(cols).take(pa.array(part)).to_pylist()
            for i, row in zip(part, rows, strict=True):
                if row.get("finish_reason") is not None:
                    out[i] = float(is_truncated(row))
    return out


def truncation_rate(requests: pa.Table) -> float | None:
    flags = truncated_flags(_ok(requests))
    known = flags[np.isfinite(flags)]
    return float(known.mean()) if len(known) else None


def accuracy(requests: pa.Table) -> float | None:
    from reasonperf.grading.stats import avg_at_n

    cols = [c for c in ("dataset", "problem_id", "sample_index", "correct")
            if c in requests.column_names]
    if "correct" not in cols:
        return None
    rows = requests.select(cols).filter(pc.is_valid(requests.column("correct"))).to_pylist()
    return avg_at_n(rows)["avg"] if rows else None


CATALOG: tuple[Metric, ...] = (
    # ---- latency, per request (lower is better)
    Metric("ttft", "TTFT", "s", "first_token_s - sent_s: the first token of any kind "
           "(reasoning included)", "lower", "latency", "request", rq.ttft, (SENT, FIRST)),
    Metric("ttfvt", "TTFVT", "s", "first_visible_s - sent_s: the first visible (answer) "
           "token, what a user waits for; none when the request ended inside its thinking",
           "lower", "latency", "request", rq.ttfvt, (SENT, VISIBLE)),
    Metric("thinking_s", "thinking", "s", "reasoning_end_s - first_token_s: the thinking "
           "phase; n/a (not 0) for a request without reasoning", "lower", "latency",
           "request", rq.thinking_s, (REASONED, FIRST)),
    Metric("e2e", "E2E", "s", "done_s - sent_s: the whole request", "lower", "latency",
           "request", rq.e2e, (SENT, DONE)),
    Metric("client_queue_s", "client queue", "s", "sent_s - scheduled_s: time the client "
           "held the request (a concurrency slot, a free connection); reported, never hidden",
           "lower", "latency", "request", rq.client_queue_s,
           (SENT, Needs("scheduled_s", "no scheduled time"))),
    Metric("tpot", "TPOT", "s", "(done_s - first_token_s) / (completion_tokens - 1)",
           "lower", "latency", "request", rq.tpot,
           (FIRST, DONE, Needs("completion_tokens", "no token count"),
            Needs("completion_tokens", "fewer than 2 tokens", 2))),
    Metric("reasoning_tpot", "reasoning TPOT", "s", "(reasoning_end_s - first_token_s) / "
           "(reasoning_tokens - 1)", "lower", "latency", "request", rq.reasoning_tpot,
           (REASONED, FIRST, Needs("reasoning_tokens", "no token count"),
            Needs("reasoning_tokens", "fewer than 2 reasoning tokens", 2))),
    Metric("answer_tpot", "answer TPOT", "s", "(done_s - first_visible_s) / "
           "(answer_tokens - 1)", "lower", "latency", "request", rq.answer_tpot,
           (VISIBLE, DONE, Needs("answer_tokens", "no token count"),
            Needs("answer_tokens", "fewer than 2 answer tokens", 2))),
    Metric("itl", "ITL", "s", "inter-token latency, one value per token: the gap between "
           "a request's token events (events of one network read merged) divided by the "
           "tokens the later event carried; only requests whose every chunk has a token "
           "count", "lower", "latency", "token", rq.itl_stats),
    # ---- throughput, per run over active time (higher is better)
    Metric("request_throughput", "requests/s", "req/s", "ok requests / window; the window "
           "is the sum over run segments of (last done_s - first sent_s), so the downtime "
           "between an interruption and its resume does not count", "higher", "throughput",
           "run", _run(tp.request_throughput)),
    Metric("output_tps", "output tokens/s", "tok/s", "sum of completion_tokens over the ok "
           "requests with a count / window; a lower bound when token_coverage < 1",
           "higher", "throughput", "run", _run(tp.output_tps)),
    Metric("visible_tps", "visible (answer) tokens/s", "tok/s", "sum of answer_tokens over "
           "the ok requests with a count / window", "higher", "throughput", "run",
           _run(tp.visible_tps)),
    Metric("paper_tps", "paper-compatible tokens/s", "tok/s", "sum of completion_tokens / "
           "(last done_s - first first_visible_s) per segment: the study's own TPS, for "
           "comparison only", "higher", "throughput", "run", _run(tp.paper_tps)),
    Metric("token_coverage", "token count coverage", "fraction", "ok requests with a known "
           "completion token count / ok requests (a server that ignores stream_options "
           "sends none)", "higher", "throughput", "run", _run(tp.token_coverage)),
    Metric("goodput", "goodput", "req/s", "ok requests meeting every given SLO "
           "(ttft, ttfvt, tpot, e2e; a missing value fails) / window", "higher",
           "throughput", "run", goodput),
    Metric("correct_goodput", "correct goodput", "req/s", "requests meeting every SLO and "
           "graded correct / window", "higher", "throughput", "run", correct_goodput),
    Metric("slo_attainment", "SLO attainment", "fraction", "requests meeting every SLO / "
           "all requests (errors count as misses)", "higher", "throughput", "run",
           slo_attainment),
    # ---- accuracy
    Metric("accuracy", "accuracy avg@n", "fraction", "mean correctness over the samples "
           "of a problem, then over problems (graded rows only)", "higher", "accuracy",
           "accuracy", accuracy),
    Metric("truncation_rate", "truncated", "fraction", "share of ok requests cut off: "
           "finish_reason length, or reasoning that never closed (grading.is_truncated; "
           "the graded truncated column when set)", "lower", "accuracy", "accuracy",
           truncation_rate),
)

_BY_NAME = {m.name: m for m in CATALOG}


def get(name: str) -> Metric:
    return _BY_NAME[name]


def by_group(group: Group) -> tuple[Metric, ...]:
    return tuple(m for m in CATALOG if m.group == group)


REQUEST_METRICS: tuple[Metric, ...] = tuple(m for m in CATALOG if m.scope == "request")


def request_metrics(requests: pa.Table) -> dict[str, np.ndarray]:
    """Every per-request metric, aligned with the rows of ``requests``."""
    return {m.name: m.compute(requests) for m in REQUEST_METRICS}


def definitions() -> dict[str, dict[str, str]]:
    """name -> {label, unit, definition, direction}, for summary.json."""
    return {m.name: {"label": m.label, "unit": m.unit, "definition": m.definition,
                     "direction": f"{m.direction} is better"} for m in CATALOG}
