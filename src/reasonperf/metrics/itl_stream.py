"""Inter-token latency over a chunk table read in record batches (memory flat in the run).

``request.itl_stats`` needs the whole chunk table, with a Python string per chunk: for a
run of a million requests (ten million chunks) that is gigabytes. The fold writes each
request's chunks contiguously, so the batches here are cut at request boundaries (the
partial last request of a batch is carried into the next) and each part is measured on
its own. Request ids become their rank among the sorted ok ids, so the values come out
in exactly the order ``itl_stats`` gives them (by request id, then time) and every number
of the summary stays the same. Chunks that are not contiguous per request give None, and
the caller falls back to ``itl_stats`` on the whole table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reasonperf.metrics.request import NO_CHUNK_COUNT, NO_TIMED_GAP, ItlInfo, _add, token_gaps

COLUMNS = ("request_id", "t_s", "n_tokens")


def _floats(arr: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64)


@dataclass
class _Acc:
    """What the parts measured so far add up to."""

    seen: np.ndarray  # per ok id (by rank): had chunks in an earlier part
    values: list[np.ndarray] = field(default_factory=list)
    ranks: list[np.ndarray] = field(default_factory=list)
    uncounted: int = 0
    no_gap: int = 0
    qualified: int = 0
    with_chunks: int = 0

    def add(self, codes: np.ndarray, t: np.ndarray, n: np.ndarray) -> bool:
        """Measure one part (whole requests); False when a request recurs (not contiguous)."""
        if len(codes) == 0:
            return True
        uniq, inverse = np.unique(codes, return_inverse=True)
        if self.seen[uniq].any():
            return False
        self.seen[uniq] = True
        self.with_chunks += len(uniq)
        gaps, n_next, gap_of, uncounted, has_gap = token_gaps(inverse, len(uniq), t, n)
        self.uncounted += int(uncounted.sum())
        self.no_gap += int((~uncounted & ~has_gap).sum())
        self.qualified += int(has_gap.sum())
        if len(gaps):
            self.values.append(np.repeat(gaps / n_next, n_next))
            self.ranks.append(np.repeat(uniq[gap_of].astype(np.int32), n_next))
        return True

    def result(self) -> tuple[np.ndarray, ItlInfo]:
        excluded: dict[str, int] = {}
        _add(excluded, NO_CHUNK_COUNT, self.uncounted)
        _add(excluded, NO_TIMED_GAP, self.no_gap)
        info = ItlInfo(requests_qualified=self.qualified, excluded=excluded)
        if not self.values:
            return np.empty(0), info
        values = np.concatenate(self.values)
        self.values.clear()
        order = np.argsort(np.concatenate(self.ranks), kind="stable")
        self.ranks.clear()
        return values[order], info


def itl_stats_batches(batches: Iterable[pa.RecordBatch], ok_ids: pa.Array
                      ) -> tuple[np.ndarray, ItlInfo, int] | None:
    """``itl_stats`` of the chunks of the ``ok_ids`` requests, plus how many of those
    requests had any chunk; None when a request's chunks are not contiguous."""
    sorted_ids = pc.unique(ok_ids).sort()
    acc = _Acc(seen=np.zeros(len(sorted_ids), dtype=bool))
    carry: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    for batch in batches:
        codes = pc.fill_null(pc.index_in(batch.column("request_id"), value_set=sorted_ids), -1)
        c = np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int64)
        t, n = _floats(batch.column("t_s")), _floats(batch.column("n_tokens"))
        mine = c >= 0
        c, t, n = c[mine], t[mine], n[mine]
        if carry is not None:
            c, t, n = (np.concatenate([a, b]) for a, b in zip(carry, (c, t, n), strict=True))
        if len(c) == 0:
            carry = None
            continue
        cut = len(c) - int(np.argmax(c[::-1] != c[-1])) if (c != c[-1]).any() else 0
        if not acc.add(c[:cut], t[:cut], n[:cut]):
            return None
        carry = (c[cut:], t[cut:], n[cut:])
    if carry is not None and not acc.add(*carry):
        return None
    values, info = acc.result()
    return values, info, acc.with_chunks
