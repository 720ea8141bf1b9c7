"""Per-request metrics, derived from the stored records (definitions: metrics/catalog.py,
rendered in docs/metrics.md).

Every metric here is a column computed from the request table, never stored: a change of
definition is a re-analysis, not a re-run. Missing inputs give NaN (the request is then
left out of that metric's percentiles, never counted as zero), and ``missing_reasons``
says why each left-out request was left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ERRORS = "errors"  # the exclusion reason of a request that did not end ok
NO_CHUNK_COUNT = "a chunk without a token count"
NO_TIMED_GAP = "fewer than 2 timed token events"


def col(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64 with NaN for nulls (all NaN when absent)."""
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)


def _per_token(span: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = span / (tokens - 1)
    out[~(tokens > 1)] = np.nan
    return out


def ttft(r: pa.Table) -> np.ndarray:
    return col(r, "first_token_s") - col(r, "sent_s")


def ttfvt(r: pa.Table) -> np.ndarray:
    return col(r, "first_visible_s") - col(r, "sent_s")


def thinking_s(r: pa.Table) -> np.ndarray:
    """NaN for a request without reasoning: a model that does not think has no thinking
    time, not a thinking time of zero."""
    return col(r, "reasoning_end_s") - col(r, "first_token_s")


def e2e(r: pa.Table) -> np.ndarray:
    return col(r, "done_s") - col(r, "sent_s")


def client_queue_s(r: pa.Table) -> np.ndarray:
    return col(r, "sent_s") - col(r, "scheduled_s")


def tpot(r: pa.Table) -> np.ndarray:
    return _per_token(col(r, "done_s") - col(r, "first_token_s"), col(r, "completion_tokens"))


def reasoning_tpot(r: pa.Table) -> np.ndarray:
    return _per_token(col(r, "reasoning_end_s") - col(r, "first_token_s"),
                      col(r, "reasoning_tokens"))


def answer_tpot(r: pa.Table) -> np.ndarray:
    return _per_token(col(r, "done_s") - col(r, "first_visible_s"), col(r, "answer_tokens"))


@dataclass(frozen=True, slots=True)
class Needs:
    """One input a per-request metric needs, and the words for a request that lacks it:
    the column is null, or (with ``min_value``) below that value."""

    column: str
    reason: str
    min_value: float | None = None

    def unmet(self, table: pa.Table) -> np.ndarray:
        v = col(table, self.column)
        missing = np.isnan(v)
        if self.min_value is not None:
            missing |= ~(v >= self.min_value)
        return missing


def missing_reasons(table: pa.Table, values: np.ndarray, needs: tuple[Needs, ...]
                    ) -> dict[str, int]:
    """Why each request without a finite value has none: the first unmet need (errors
    first), else "undefined"; reason -> number of requests."""
    out: dict[str, int] = {}
    left = ~np.isfinite(values)
    if "status" in table.column_names and table.num_rows:
        failed = np.asarray(pc.fill_null(pc.not_equal(table.column("status"), "ok"), True)
                            .to_numpy(zero_copy_only=False), dtype=bool)
        _add(out, ERRORS, int((left & failed).sum()))
        left &= ~failed
    for need in needs:
        hit = left & need.unmet(table)
        _add(out, need.reason, int(hit.sum()))
        left &= ~hit
    _add(out, "undefined", int(left.sum()))
    return out


def _add(counts: dict[str, int], reason: str, n: int) -> None:
    if n:
        counts[reason] = counts.get(reason, 0) + n


def request_metrics(requests: pa.Table) -> dict[str, np.ndarray]:
    """Every per-request metric of the catalogue, aligned with the rows of ``requests``."""
    from reasonperf.metrics.catalog import request_metrics as from_catalog

    return from_catalog(requests)


# --------------------------------------------------------------------------- ITL


class ItlInfo(TypedDict):
    requests_qualified: int
    excluded: dict[str, int]


def itl_stats(chunks: pa.Table) -> tuple[np.ndarray, ItlInfo]:
    """Inter-token latency, one value per token after the first token event of a request,
    and {requests_qualified, excluded: reason -> requests}.

    Events of one request that share a timestamp arrived in one network read: they are
    merged into one event first, so a read that carried several chunks does not become
    zero gaps. A merged event of n tokens that arrived g seconds after the previous one
    contributes n values of g / n. Events with zero tokens (role or usage-only chunks)
    carry no token and are skipped. Only requests whose every chunk has a count qualify:
    guessing that a chunk is one token is exactly the mistake this tool exists to avoid.
    """
    if chunks.num_rows == 0:
        return np.empty(0), ItlInfo(requests_qualified=0, excluded={})
    rid = np.asarray(chunks.column("request_id").to_numpy(zero_copy_only=False))
    t = col(chunks, "t_s")
    n = col(chunks, "n_tokens")
    uniq, inverse = np.unique(rid, return_inverse=True)
    gaps, n_next, _gap_of, uncounted, has_gap = token_gaps(inverse, len(uniq), t, n)
    excluded: dict[str, int] = {}
    _add(excluded, NO_CHUNK_COUNT, int(uncounted.sum()))
    _add(excluded, NO_TIMED_GAP, int((~uncounted & ~has_gap).sum()))
    info = ItlInfo(requests_qualified=int(has_gap.sum()), excluded=excluded)
    if len(gaps) == 0:
        return np.empty(0), info
    return np.repeat(gaps / n_next, n_next), info


def itl_values(chunks: pa.Table) -> np.ndarray:
    """The ITL values of ``itl_stats`` alone."""
    return itl_stats(chunks)[0]


def token_gaps(inverse: np.ndarray, n_requests: int, t: np.ndarray, n: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The gaps between a request's token events, ``inverse`` giving each event's request.

    Requests with any uncounted chunk are left out; events of one request that share a
    timestamp are merged (their tokens summed). Returns (gaps, tokens each gap ended with,
    the request of each gap, uncounted per request, has-a-gap per request).
    """
    uncounted = np.bincount(inverse, weights=np.isnan(n), minlength=n_requests) > 0
    keep = ~uncounted[inverse] & (n > 0) & np.isfinite(t)
    g, t, n = inverse[keep], t[keep], n[keep]
    order = np.lexsort((t, g))
    g, t, n = g[order], t[order], n[order]
    new = np.ones(len(g), dtype=bool)
    new[1:] = (g[1:] != g[:-1]) | (t[1:] != t[:-1])
    starts = np.flatnonzero(new)
    g, t = g[starts], t[starts]
    n = np.add.reduceat(n, starts) if len(starts) else n[:0]
    same = g[1:] == g[:-1]
    gaps, n_next = np.diff(t)[same], n[1:][same].astype(np.int64)
    has_gap = np.zeros(n_requests, dtype=bool)
    has_gap[g[1:][same]] = True
    return gaps, n_next, g[1:][same], uncounted, has_gap
