"""Per-request metrics, derived from the stored records (ARCHITECTURE.md section 4.1).

Every metric here is a column computed from the request table, never stored: a change of
definition is a re-analysis, not a re-run. Missing inputs give NaN (the request is then
left out of that metric's percentiles, never counted as zero).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

# name -> (unit, one-line definition); the one place the definitions are spelled out
METRICS: dict[str, tuple[str, str]] = {
    "ttft": ("s", "first token of any kind (reasoning included) - sent"),
    "ttfvt": ("s", "first visible (answer) token - sent"),
    "thinking_s": ("s", "(reasoning end or first visible) - first token"),
    "e2e": ("s", "end of stream - sent"),
    "client_queue_s": ("s", "sent - scheduled (time the client held the request)"),
    "tpot": ("s", "(done - first token) / (completion tokens - 1)"),
    "reasoning_tpot": ("s", "(reasoning end - first token) / (reasoning tokens - 1)"),
    "answer_tpot": ("s", "(done - first visible) / (answer tokens - 1)"),
}


def _col(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64 with NaN for nulls."""
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)


def _per_token(span: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = span / (tokens - 1)
    out[~(tokens > 1)] = np.nan
    return out


def request_metrics(requests: pa.Table) -> dict[str, np.ndarray]:
    """Derived per-request columns, aligned with the rows of ``requests``."""
    sent = _col(requests, "sent_s")
    sched = _col(requests, "scheduled_s")
    first = _col(requests, "first_token_s")
    vis = _col(requests, "first_visible_s")
    r_end = _col(requests, "reasoning_end_s")
    done = _col(requests, "done_s")
    comp = _col(requests, "completion_tokens")
    r_tok = _col(requests, "reasoning_tokens")
    a_tok = _col(requests, "answer_tokens")
    think_end = np.where(np.isnan(r_end), vis, r_end)
    return {
        "ttft": first - sent,
        "ttfvt": vis - sent,
        "thinking_s": think_end - first,
        "e2e": done - sent,
        "client_queue_s": sent - sched,
        "tpot": _per_token(done - first, comp),
        "reasoning_tpot": _per_token(r_end - first, r_tok),
        "answer_tpot": _per_token(done - vis, a_tok),
    }


def itl_values(chunks: pa.Table) -> np.ndarray:
    """Inter-token latency, one value per token after the first of each request.

    A chunk that carried n tokens and arrived g seconds after the previous chunk of the same
    request contributes n values of g / n. Chunks without a per-chunk token count (the
    server gave no continuous usage) are left out: guessing that a chunk is one token is
    exactly the mistake this tool exists to avoid.
    """
    if chunks.num_rows == 0:
        return np.empty(0)
    rid = chunks.column("request_id").to_numpy(zero_copy_only=False)
    t = _col(chunks, "t_s")
    n = _col(chunks, "n_tokens")
    order = np.lexsort((t, rid))
    rid, t, n = rid[order], t[order], n[order]
    same = rid[1:] == rid[:-1]
    gaps = np.diff(t)
    n_next = n[1:]
    ok = same & (n_next >= 1)
    gaps, n_next = gaps[ok], n_next[ok].astype(np.int64)
    if len(gaps) == 0:
        return np.empty(0)
    return np.repeat(gaps / n_next, n_next)
