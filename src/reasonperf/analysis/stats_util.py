"""Vectorised helpers shared by the analyses: column access, grouping, fits, bootstrap.

Everything here works on whole numpy arrays (no per-row Python loops) so an analysis of
100,000 requests and 1,000,000 timeline samples takes well under a second per helper.
Missing values are NaN in numeric arrays and are left out of every statistic, never
counted as zero (the same rule as ``metrics.request``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reasonperf.telemetry import names

UNKNOWN = "unknown"
MAX_FIGURE_POINTS = 2000  # per series: a report stays small and responsive
DIRECT_BOOTSTRAP_CELLS = 20_000_000  # n x resamples above which the mean uses its normal limit


# --------------------------------------------------------------------------- columns


def num(table: pa.Table, name: str) -> np.ndarray:
    """A numeric (or boolean) column as float64, NaN for nulls; all NaN if absent."""
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan)
    col = table.column(name)
    if pa.types.is_boolean(col.type):
        col = pc.cast(col, pa.float64())
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def text(table: pa.Table, name: str, missing: str = UNKNOWN) -> np.ndarray:
    """A string column as an object array, ``missing`` for nulls (or when absent)."""
    if name not in table.column_names:
        return np.full(table.num_rows, missing, dtype=object)
    col = pc.fill_null(pc.cast(table.column(name), pa.string()), missing)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)


def ok_rows(requests: pa.Table) -> pa.Table:
    """The requests that ended without a client or server error."""
    if requests.num_rows == 0:
        return requests
    return requests.filter(pc.equal(requests.column("status"), "ok"))


def truncated_flags(requests: pa.Table) -> np.ndarray:
    """1.0 / 0.0 per request, NaN when unknown: the catalogue's one definition."""
    from reasonperf.metrics.catalog import truncated_flags as flags

    return flags(requests)


def problem_keys(requests: pa.Table) -> np.ndarray:
    """One string per row identifying its problem: (dataset, problem_id), as grading does."""
    ds = text(requests, "dataset", missing="None").astype(str)
    pid = text(requests, "problem_id", missing="None").astype(str)
    return np.char.add(np.char.add(ds, "\x1f"), pid)


def per_problem_accuracy(requests: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(problem keys, mean correctness per problem) over graded rows, keys sorted.

    The mean of the second array is avg@n exactly as ``grading.stats.avg_at_n`` defines it
    (per problem, then over problems); this vector is what the bootstrap resamples.
    """
    correct = num(requests, "correct")
    graded = np.isfinite(correct)
    if not graded.any():
        return np.empty(0, dtype=str), np.empty(0)
    keys, inverse = np.unique(problem_keys(requests)[graded], return_inverse=True)
    sums = np.bincount(inverse, weights=correct[graded], minlength=len(keys))
    counts = np.bincount(inverse, minlength=len(keys))
    return keys, sums / counts


def graded_rows(requests: pa.Table) -> list[dict[str, Any]]:
    """The few columns ``grading.stats`` needs, as row dicts, for graded rows only."""
    cols = [c for c in ("dataset", "problem_id", "sample_index", "correct", "truncated",
                        "extracted_answer") if c in requests.column_names]
    if "correct" not in cols:
        return []
    table = requests.select(cols)
    return table.filter(pc.is_valid(table.column("correct"))).to_pylist()


def series(timeline: pa.Table, metric: str, source: str = names.SOURCE_ENGINE
           ) -> tuple[np.ndarray, np.ndarray]:
    """(t_s, value) of one timeline metric, time-ordered, finite values only."""
    if timeline.num_rows == 0:
        return np.empty(0), np.empty(0)
    mask = pc.and_(pc.equal(timeline["source"], source), pc.equal(timeline["metric"], metric))
    rows = timeline.filter(mask)
    t = num(rows, "t_s")
    v = num(rows, "value")
    keep = np.isfinite(t) & np.isfinite(v)
    t, v = t[keep], v[keep]
    order = np.argsort(t, kind="stable")
    return t[order], v[order]


def step_at(t_src: np.ndarray, v_src: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The value of a step series (last sample at or before each time), NaN before the first."""
    if len(t_src) == 0:
        return np.full(len(t), np.nan)
    idx = np.searchsorted(t_src, t, side="right") - 1
    out = v_src[np.clip(idx, 0, None)]
    return np.where(idx >= 0, out, np.nan)


# --------------------------------------------------------------------------- numbers


def fnum(x: Any) -> float | None:
    """A JSON-safe float: None for None / NaN / inf."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def quantile(values: np.ndarray, q: float) -> float | None:
    v = finite(values)
    return float(np.quantile(v, q)) if len(v) else None


def mean(values: np.ndarray) -> float | None:
    v = finite(values)
    return float(v.mean()) if len(v) else None


def ratio(num_: float | None, den: float | None) -> float | None:
    if num_ is None or den is None or den == 0:
        return None
    return num_ / den


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson r over the pairs where both are finite; None if < 3 pairs or either is flat."""
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def fit_line(x: Sequence[float], y: Sequence[float | None]) -> dict[str, float] | None:
    """Least-squares line y = slope * x + intercept and Pearson r; None if < 3 points."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray([np.nan if v is None else v for v in y], dtype=np.float64)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    if len(xa) < 3 or np.ptp(xa) == 0:
        return None
    slope, intercept = np.polyfit(xa, ya, 1)
    # correlation() is only None for < 3 points or a flat side, both ruled out here.
    r = correlation(xa, ya) if np.ptp(ya) > 0 else None
    return {
        "slope": float(slope),
        "intercept": float(intercept),
        "r": 0.0 if r is None else r,
        "n_points": len(xa),
    }


def as_number(label: str) -> float | None:
    try:
        value = float(label)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def sort_levels(labels: Sequence[str]) -> list[str]:
    """Numeric labels numerically first ("2" before "10"), then the others by name."""
    values = {lab: v for lab in labels if (v := as_number(lab)) is not None}
    numeric = sorted((lab for lab in labels if lab in values), key=values.__getitem__)
    other = sorted(lab for lab in labels if lab not in values)
    return numeric + other


# --------------------------------------------------------------------------- groups


def group_sorted(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(unique keys, order, starts): ``order`` sorts rows by group, ``starts`` are the
    offsets of each group in that order (for ``np.ufunc.reduceat``)."""
    uniq, inverse = np.unique(keys, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=len(uniq))
    starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    return uniq, order, starts


def group_quantile(values: np.ndarray, inverse: np.ndarray, n_groups: int, q: float
                   ) -> np.ndarray:
    """Per-group quantile (numpy's default linear interpolation), NaN values left out;
    NaN for a group with no finite value. One sort for all groups."""
    keep = np.isfinite(values)
    v, g = values[keep], inverse[keep]
    order = np.lexsort((v, g))
    v, g = v[order], g[order]
    counts = np.bincount(g, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    out = np.full(n_groups, np.nan)
    has = counts > 0
    h = (counts[has] - 1) * q
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, counts[has] - 1)
    base = starts[has]
    out[has] = v[base + lo] + (h - lo) * (v[base + hi] - v[base + lo])
    return out


# --------------------------------------------------------------------------- figures


def decimate(x: np.ndarray, y: np.ndarray, max_points: int = MAX_FIGURE_POINTS
             ) -> tuple[np.ndarray, np.ndarray]:
    """At most ~max_points points of a time series, keeping each bucket's min and max so
    spikes (a KV cache briefly full, a burst of waiting requests) stay visible."""
    n = len(x)
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    starts = edges[:-1][np.diff(edges) > 0]
    lo_idx = _arg_reduce(y, starts, np.minimum)
    hi_idx = _arg_reduce(y, starts, np.maximum)
    idx = np.unique(np.concatenate((lo_idx, hi_idx)))
    return x[idx], y[idx]


def _arg_reduce(y: np.ndarray, starts: np.ndarray, ufunc: np.ufunc) -> np.ndarray:
    """Index of the per-bucket min/max (the first one when tied)."""
    best = ufunc.reduceat(y, starts)
    bucket = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(y))))
    hit = y == best[bucket]
    first = np.full(len(starts), -1)
    idx = np.flatnonzero(hit)
    # the first hit per bucket: reversed assignment keeps the smallest index
    first[bucket[idx][::-1]] = idx[::-1]
    return first


def thin(n: int, max_points: int = MAX_FIGURE_POINTS) -> np.ndarray:
    """Evenly spaced row indices, at most max_points of them (all rows when fewer)."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).astype(np.int64))


def tolist(values: np.ndarray) -> list[float | None]:
    """A float array as a JSON-safe list (NaN -> None)."""
    return [fnum(v) for v in np.asarray(values, dtype=np.float64)]


# --------------------------------------------------------------------------- bootstrap


def bootstrap_mean(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` bootstrap replicates of the mean of the finite values.

    Resampled exactly (in blocks, so memory stays small) while n x n_boot is at most
    DIRECT_BOOTSTRAP_CELLS. Above that (over ~10,000 values at 2,000 resamples) the exact
    resampling costs seconds per metric, and the bootstrap distribution of a mean is its
    normal limit to within noise: replicates are drawn from N(mean, sd / sqrt(n)) with the
    population sd, which is the bootstrap distribution's own variance.
    """
    v = finite(values)
    n = len(v)
    if n == 0:
        return np.full(n_boot, np.nan)
    if n * n_boot > DIRECT_BOOTSTRAP_CELLS:
        return rng.normal(v.mean(), v.std() / math.sqrt(n), size=n_boot)
    block = max(1, min(n_boot, 2_000_000 // n))
    out = np.empty(n_boot)
    for start in range(0, n_boot, block):
        stop = min(n_boot, start + block)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = v[idx].mean(axis=1)
    return out


def bootstrap_quantile(values: np.ndarray, q: float, n_boot: int, rng: np.random.Generator
                       ) -> np.ndarray:
    """``n_boot`` bootstrap replicates of the q-quantile (numpy's linear interpolation) of
    the finite values, in O(n log n + n_boot log n) instead of O(n x n_boot).

    Exact, not an approximation: a resample of n values drawn from the sorted data is a
    multinomial count per sorted position, and its k-th smallest value is the data value
    at the first position where the cumulative count reaches k. The cumulative count at
    any position, given the counts at two positions around it, is binomial, so a bisection
    over positions finds that position with ~log2(n) binomial draws per replicate (all
    replicates at once). The (k+1)-th smallest, needed for the interpolation, follows from
    the count at that position (the process is Markov): either the same value, or the
    first occupied position after it, the minimum of the remaining uniform draws.
    """
    x = np.sort(finite(values))
    n = len(x)
    if n == 0:
        return np.full(n_boot, np.nan)
    if n == 1:
        return np.full(n_boot, x[0])
    h = (n - 1) * q
    k = int(math.floor(h)) + 1  # 1-based rank of the lower order statistic
    frac = h - (k - 1)
    lo = np.zeros(n_boot, dtype=np.int64)
    hi = np.full(n_boot, n, dtype=np.int64)
    c_lo = np.zeros(n_boot, dtype=np.int64)
    c_hi = np.full(n_boot, n, dtype=np.int64)
    while True:
        open_ = hi - lo > 1
        if not open_.any():
            break
        mid = (lo + hi) // 2
        width = np.where(open_, hi - lo, 1)
        p = np.where(open_, (mid - lo) / width, 0.0)
        c_mid = c_lo + rng.binomial(np.where(open_, c_hi - c_lo, 0), p)
        below = open_ & (c_mid < k)
        above = open_ & ~below
        lo = np.where(below, mid, lo)
        c_lo = np.where(below, c_mid, c_lo)
        hi = np.where(above, mid, hi)
        c_hi = np.where(above, c_mid, c_hi)
    lower = x[hi - 1]
    if frac == 0:
        return lower
    # (k+1)-th: same position if it holds > k draws, else the first occupied one after it
    remaining = n - c_hi  # draws beyond position hi, uniform over its n - hi successors
    span = np.maximum(n - hi, 1)
    u = rng.random(n_boot)
    with np.errstate(divide="ignore"):
        w = 1.0 - u ** (1.0 / np.maximum(remaining, 1))
    step = np.minimum(np.floor(span * w).astype(np.int64) + 1, span)
    nxt = np.where(c_hi >= k + 1, hi, np.minimum(hi + step, n))
    upper = x[nxt - 1]
    return lower + frac * (upper - lower)


def percentile_ci(replicates: np.ndarray, confidence: float = 0.95
                  ) -> tuple[float | None, float | None]:
    """The percentile-method interval of bootstrap replicates (finite ones only)."""
    r = finite(replicates)
    if len(r) < 2:
        return None, None
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(r, [tail, 1.0 - tail])
    return float(lo), float(hi)


# --------------------------------------------------------------------------- runs


def run_spec(info: dict[str, Any]) -> dict[str, Any]:
    """run.json's RunSpec as a dict ({} when absent)."""
    spec = info.get("spec")
    return spec if isinstance(spec, dict) else {}


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def output_tps(ok: pa.Table) -> float | None:
    """Output tokens per second of ok rows: the catalogue's ``output_tps`` (one segment)."""
    from reasonperf.metrics import catalog

    return catalog.get("output_tps").compute(ok)
