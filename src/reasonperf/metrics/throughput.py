"""Run-level throughput over active time (definitions: metrics/catalog.py).

A run interrupted and resumed has segments (run.json ``segments``: started_s / ended_s on
the run's one time axis). The time between segments is downtime, not serving time: each
segment gets its own window (first sent_s to last done_s of its ok requests) and the
run's window is their sum. A run without segment information is one segment.

Tokens are summed over the requests whose count is known; ``coverage`` says what share of
the ok requests that is. A request without a count is unknown, never zero: with coverage
below 1 every token rate is a lower bound, and the summary says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from reasonperf.metrics.request import col


@dataclass(frozen=True, slots=True)
class Windows:
    """Per-segment windows of a set of ok requests."""

    segment: np.ndarray  # segment index per request (-1: outside every segment)
    spans: list[dict[str, Any]]  # per segment: started_s, ended_s, requests, window_s

    @property
    def total_s(self) -> float:
        return float(sum(s["window_s"] for s in self.spans))


def _bounds(segments: Sequence[dict[str, Any]] | None) -> list[tuple[float, float]]:
    """(start, end) per segment; a segment that never recorded its end (a crash) runs
    until the next one starts."""
    segs = [s for s in segments or [] if s.get("started_s") is not None]
    out = []
    for i, s in enumerate(segs):
        end = s.get("ended_s")
        if end is None:
            end = segs[i + 1]["started_s"] if i + 1 < len(segs) else np.inf
        out.append((float(s["started_s"]), float(end)))
    return out


def windows(ok: pa.Table, segments: Sequence[dict[str, Any]] | None = None,
            start_col: str = "sent_s") -> Windows:
    """Assign each ok request to the segment its sent_s falls in; one window per segment
    from the first ``start_col`` to the last done_s of its requests."""
    sent, done, start = col(ok, "sent_s"), col(ok, "done_s"), col(ok, start_col)
    bounds = _bounds(segments) or [(-np.inf, np.inf)]
    seg = np.full(ok.num_rows, -1)
    for i, (lo, hi) in enumerate(bounds):
        seg[(seg < 0) & (sent >= lo) & (sent <= hi)] = i
    seg[(seg < 0) & np.isfinite(sent)] = len(bounds) - 1  # clock jitter at an edge
    spans = []
    for i, (lo, hi) in enumerate(bounds):
        mask = seg == i
        s, d = start[mask], done[mask]
        s, d = s[np.isfinite(s)], d[np.isfinite(d)]
        window = float(d.max() - s.min()) if len(s) and len(d) else 0.0
        spans.append({"started_s": None if np.isinf(lo) else lo,
                      "ended_s": None if np.isinf(hi) else hi,
                      "requests": int(mask.sum()), "window_s": max(window, 0.0)})
    return Windows(seg, spans)


def known_sum(ok: pa.Table, column: str) -> tuple[int | None, int]:
    """(sum over the requests with a value, how many had one); sum None when none did."""
    v = col(ok, column)
    known = np.isfinite(v)
    return (int(v[known].sum()) if known.any() else None), int(known.sum())


def rate(amount: float | None, window_s: float) -> float | None:
    return amount / window_s if amount is not None and window_s > 0 else None


def request_throughput(ok: pa.Table, segments: Sequence[dict[str, Any]] | None = None
                       ) -> float | None:
    return rate(float(ok.num_rows), windows(ok, segments).total_s) if ok.num_rows else None


def output_tps(ok: pa.Table, segments: Sequence[dict[str, Any]] | None = None
               ) -> float | None:
    return rate(known_sum(ok, "completion_tokens")[0], windows(ok, segments).total_s)


def visible_tps(ok: pa.Table, segments: Sequence[dict[str, Any]] | None = None
                ) -> float | None:
    return rate(known_sum(ok, "answer_tokens")[0], windows(ok, segments).total_s)


def paper_tps(ok: pa.Table, segments: Sequence[dict[str, Any]] | None = None
              ) -> float | None:
    """The study's own TPS: the window starts at the first visible token."""
    w = windows(ok, segments, start_col="first_visible_s")
    return rate(known_sum(ok, "completion_tokens")[0], w.total_s)


def token_coverage(ok: pa.Table, segments: Sequence[dict[str, Any]] | None = None
                   ) -> float | None:
    """Share of ok requests whose completion token count is known."""
    return known_sum(ok, "completion_tokens")[1] / ok.num_rows if ok.num_rows else None
