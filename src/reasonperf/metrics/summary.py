"""Per-run summary (ARCHITECTURE.md section 4.2), computed from the stored tables.

Windows: throughput numbers divide by (last done_s - first sent_s) over ok requests, so a
client that queued requests is not flattered. The study's own "TPS" divided by a window
starting at the first visible token; it is reported as ``paper_tps`` for comparison only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reasonperf.metrics.request import METRICS, itl_values, request_metrics

PERCENTILES = (50, 90, 95, 99)


def describe(values: np.ndarray) -> dict[str, float | int | None]:
    """count, mean, std, min, p50/p90/p95/p99, max over the finite values."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return {"count": 0}
    out: dict[str, float | int | None] = {
        "count": int(len(v)),
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "min": float(v.min()),
    }
    for p, q in zip(PERCENTILES, np.percentile(v, PERCENTILES), strict=True):
        out[f"p{p}"] = float(q)
    out["max"] = float(v.max())
    return out


def _sum(table: pa.Table, col: str) -> int | None:
    s = pc.sum(table.column(col)).as_py()
    return int(s) if s is not None else None


def _counts(table: pa.Table, col: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in table.column(col).to_pylist():
        key = "none" if v is None else str(v)
        out[key] = out.get(key, 0) + 1
    return out


def token_check(requests: pa.Table, tolerance: int = 0) -> dict[str, Any]:
    """reasoning + answer against completion tokens, per request; lists the mismatches."""
    bad = []
    for row in requests.select(
        ["request_id", "completion_tokens", "reasoning_tokens", "answer_tokens"]
    ).to_pylist():
        c, r, a = row["completion_tokens"], row["reasoning_tokens"], row["answer_tokens"]
        if c is None or r is None or a is None:
            continue
        if abs((r + a) - c) > tolerance:
            bad.append({"request_id": row["request_id"], "completion": c, "reasoning": r, "answer": a})
    return {"checked": requests.num_rows, "mismatches": len(bad), "examples": bad[:5]}


def rate_limited(requests: pa.Table) -> dict[str, Any]:
    """HTTP 429s: how many, their share of all requests, and the Retry-After the server
    asked for (never acted on: no silent retries)."""
    is_429 = pc.fill_null(pc.equal(requests.column("error_type"), "http_429"), False)
    n = int(pc.sum(is_429).as_py() or 0)
    after = np.array([], dtype=float)
    if "retry_after_s" in requests.column_names:
        col = requests.column("retry_after_s").filter(is_429).drop_null()
        after = col.to_numpy().astype(float)
    return {
        "count": n,
        "share": n / requests.num_rows if requests.num_rows else None,
        "with_retry_after": len(after),
        "retry_after_s_median": float(np.median(after)) if len(after) else None,
        "retry_after_s_max": float(after.max()) if len(after) else None,
    }


def slo_mask(metrics: dict[str, np.ndarray], slo: dict[str, float]) -> np.ndarray:
    """True where a request meets every SLO given (a missing metric fails the SLO)."""
    n = len(next(iter(metrics.values()))) if metrics else 0
    ok = np.ones(n, dtype=bool)
    for name, limit in slo.items():
        vals = metrics[name]
        ok &= np.isfinite(vals) & (vals <= limit)
    return ok


def summarize(
    requests: pa.Table,
    chunks: pa.Table | None = None,
    slo: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The client-side summary of one run (server and accuracy sections are added by
    their own modules)."""
    slo = slo or {}
    status = requests.column("status").to_numpy(zero_copy_only=False)
    ok_mask = status == "ok"
    ok = requests.filter(pa.array(ok_mask))
    metrics = request_metrics(ok)
    latency = {name: describe(vals) for name, vals in metrics.items()}
    if chunks is not None and chunks.num_rows:
        ok_ids = ok.column("request_id").combine_chunks() if ok.num_rows else pa.array([], pa.string())
        itl = itl_values(chunks.filter(pc.is_in(chunks.column("request_id"), ok_ids)))
        latency["itl"] = describe(itl)

    sent = ok.column("sent_s").to_numpy(zero_copy_only=False).astype(float)
    done = ok.column("done_s").to_numpy(zero_copy_only=False).astype(float)
    vis = ok.column("first_visible_s").to_numpy(zero_copy_only=False).astype(float)
    window = float(np.nanmax(done) - np.nanmin(sent)) if ok.num_rows else 0.0
    comp = _sum(ok, "completion_tokens") or 0
    ans = _sum(ok, "answer_tokens") or 0
    vis_fin = vis[np.isfinite(vis)]
    paper_window = float(np.nanmax(done) - vis_fin.min()) if len(vis_fin) else 0.0

    def rate(x: float, w: float) -> float | None:
        return x / w if w > 0 else None

    throughput: dict[str, Any] = {
        "window_s": window,
        "request_throughput": rate(ok.num_rows, window),
        "output_tps": rate(comp, window),
        "visible_tps": rate(ans, window),
        "paper_tps": rate(comp, paper_window),
    }
    if slo:
        meets = slo_mask(metrics, slo)
        throughput["slo"] = dict(slo)
        throughput["slo_attainment"] = float(meets.sum() / len(status)) if len(status) else None
        throughput["goodput"] = rate(float(meets.sum()), window)
        correct_col = ok.column("correct")
        if correct_col.null_count < ok.num_rows:
            is_correct = pc.fill_null(correct_col, False).to_numpy(zero_copy_only=False)
            good_correct = meets & is_correct.astype(bool)
            throughput["correct_goodput"] = rate(float(good_correct.sum()), window)

    errors = requests.filter(pa.array(~ok_mask))
    return {
        "requests": {
            "total": requests.num_rows,
            "ok": ok.num_rows,
            "errors": errors.num_rows,
            "error_types": _counts(errors, "error_type"),
            "finish_reasons": _counts(requests, "finish_reason"),
            "rate_limited": rate_limited(requests),
        },
        "latency": latency,
        "metric_definitions": {k: {"unit": u, "definition": d} for k, (u, d) in METRICS.items()},
        "throughput": throughput,
        "tokens": {
            "prompt": _sum(ok, "prompt_tokens"),
            "completion": comp,
            "reasoning": _sum(ok, "reasoning_tokens"),
            "answer": ans,
            "count_source": _counts(ok, "token_count_source"),
            "check": token_check(ok),
        },
    }
