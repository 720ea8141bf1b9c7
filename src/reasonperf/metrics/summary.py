"""Per-run summary, computed from the stored tables (definitions: metrics/catalog.py).

Windows: throughput numbers divide by the active time of the run, per segment (first
sent_s to last done_s of its ok requests), so a client that queued requests is not
flattered and the downtime before a resume is not counted. The study's own "TPS" divided
by a window starting at the first visible token; it is reported as ``paper_tps`` for
comparison only.

Every latency block states how many requests it covers and how many were left out and
why (errors, no visible token, no reasoning, ...), in numbers and in words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reasonperf.metrics import catalog, itl_stream
from reasonperf.metrics import throughput as tp
from reasonperf.metrics.catalog import slo_mask
from reasonperf.metrics.request import ERRORS, itl_stats, missing_reasons
from reasonperf.metrics.token_check import token_check

PERCENTILES = (50, 90, 95, 99)
SLICE = 4096  # rows turned into Python objects at a time
__all__ = ["describe", "slo_mask", "summarize", "token_check"]


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


def _counts(table: pa.Table, col: str) -> dict[str, int]:
    out: dict[str, int] = {}
    column = table.column(col)
    for start in range(0, len(column), SLICE):  # a slice at a time: never a list of the run
        for v in column.slice(start, SLICE).to_pylist():
            key = "none" if v is None else str(v)
            out[key] = out.get(key, 0) + 1
    return out


def _note(n: int, total: int, excluded: dict[str, int], unit: str = "requests") -> str:
    """The block's population in words: "18 of 23 requests; left out: 2 errors, ..."."""
    head = f"{n} of {total} {unit}"
    if not excluded:
        return head
    return head + "; left out: " + ", ".join(f"{k} {v}" for k, v in excluded.items())


def latency_block(values: np.ndarray, requests: pa.Table, metric: catalog.Metric
                  ) -> dict[str, Any]:
    """describe() plus n, the exclusions by reason and a sentence saying so."""
    block: dict[str, Any] = describe(values)
    excluded = missing_reasons(requests, values, metric.needs)
    block["requests"] = requests.num_rows
    block["excluded"] = excluded
    note = _note(block["count"], requests.num_rows, excluded)
    n_ok = requests.num_rows - excluded.get(ERRORS, 0)
    if metric.name == "thinking_s" and n_ok and excluded.get("no reasoning") == n_ok:
        note = "n/a: no request reasoned (the model did not think); " + note
    block["note"] = note
    return block


def _itl_block(chunks: pa.Table | pq.ParquetFile, requests: pa.Table, ok_ids: pa.Array
               ) -> dict[str, Any]:
    """ITL over the ok requests whose every chunk has a count, with who qualified.

    Streamed in record batches (itl_stream) so a big run never holds its chunk table;
    chunks that are not contiguous per request are measured whole, as before."""
    cols = list(itl_stream.COLUMNS)
    batches = (chunks.select(cols).to_batches() if isinstance(chunks, pa.Table)
               else chunks.iter_batches(batch_size=1 << 16, columns=cols))
    streamed = itl_stream.itl_stats_batches(batches, ok_ids)
    if streamed is None:
        whole = chunks if isinstance(chunks, pa.Table) else chunks.read(columns=cols)
        ok_chunks = whole.filter(pc.is_in(whole.column("request_id"), ok_ids))
        values, info = itl_stats(ok_chunks)
        with_chunks = len(pc.unique(ok_chunks.column("request_id")))
    else:
        values, info, with_chunks = streamed
    block: dict[str, Any] = describe(values)
    excluded: dict[str, int] = {}
    n_ok = len(pc.unique(ok_ids))
    n_err = requests.num_rows - n_ok
    if n_err:
        excluded[ERRORS] = n_err
    excluded.update(info["excluded"])
    if n_ok - with_chunks:
        excluded["no chunk"] = n_ok - with_chunks
    block.update(requests=requests.num_rows, requests_qualified=info["requests_qualified"],
                 excluded=excluded,
                 note=_note(info["requests_qualified"], requests.num_rows, excluded)
                 + f" ({block['count']} token gaps)")
    return block


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


def summarize(
    requests: pa.Table,
    chunks: pa.Table | pq.ParquetFile | None = None,
    slo: dict[str, float] | None = None,
    segments: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The client-side summary of one run (server, truth and accuracy sections are added
    by their own modules). ``segments``: run.json's, for per-segment windows."""
    slo = slo or {}
    ok_mask = np.asarray(pc.fill_null(pc.equal(requests.column("status"), "ok"), False)
                         .to_numpy(zero_copy_only=False), dtype=bool)  # no str per row
    ok = requests if ok_mask.all() else requests.filter(pa.array(ok_mask))  # no copy if all ok
    all_metrics = catalog.request_metrics(requests)
    # errored requests are left out of every percentile (and counted as left out)
    latency = {m.name: latency_block(np.where(ok_mask, all_metrics[m.name], np.nan), requests, m)
               for m in catalog.REQUEST_METRICS}
    n_chunks = chunks.num_rows if isinstance(chunks, pa.Table) else (
        chunks.metadata.num_rows if chunks is not None else 0)
    if n_chunks:
        ok_ids = ok.column("request_id").combine_chunks() if ok.num_rows else pa.array([], pa.string())
        latency["itl"] = _itl_block(chunks, requests, ok_ids)

    wins = tp.windows(ok, segments)
    comp, n_counted = tp.known_sum(ok, "completion_tokens")
    coverage = n_counted / ok.num_rows if ok.num_rows else None
    throughput: dict[str, Any] = {"window_s": wins.total_s}
    for m in catalog.by_group("throughput"):
        if m.name in ("goodput", "correct_goodput", "slo_attainment") and not slo:
            continue
        throughput[m.name] = m.compute(requests, segments, slo)
    throughput["requests_with_counts"] = n_counted
    throughput["segments"] = wins.spans
    if slo:
        throughput["slo"] = dict(slo)
        if throughput.get("correct_goodput") is None:
            throughput.pop("correct_goodput", None)

    warnings = []
    if coverage is not None and coverage < 1:
        missing = ok.num_rows - n_counted
        warnings.append(
            f"completion tokens unknown for {missing} of {ok.num_rows} ok requests (the "
            "server sent no usage): token totals and tokens/s cover only the "
            f"{coverage:.0%} with counts (token_coverage), so they are lower bounds; "
            "pass --tokenizer for exact counts")

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
        "metric_definitions": catalog.definitions(),
        "throughput": throughput,
        "tokens": {
            "prompt": tp.known_sum(ok, "prompt_tokens")[0],
            "completion": comp,
            "reasoning": tp.known_sum(ok, "reasoning_tokens")[0],
            "answer": tp.known_sum(ok, "answer_tokens")[0],
            "requests_with_counts": n_counted,
            "coverage": coverage,
            "count_source": _counts(ok, "token_count_source"),
            "check": token_check(ok),
        },
        "warnings": warnings,
    }
