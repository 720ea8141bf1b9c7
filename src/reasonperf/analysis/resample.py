"""Resampling for dependent data: the intervals ``compare`` puts on a delta.

A bootstrap over requests assumes the requests of a run are independent. They are not
under load: in batch mode a whole batch shares its fate (the next batch starts when the
slowest one ends, and every request of a batch competes with the same others), and a
whole-run figure such as output tokens per second is one number per run. So:

- ``cluster_bootstrap``: resample whole clusters (batches) and recompute the statistic
  over the requests they hold;
- ``block_bootstrap_rate``: a circular block bootstrap (Politis & Romano 1992) of
  per-window token counts, for a run-level rate from one run;
- ``pooled_t_interval``: the interval over repeated runs (a few numbers per side: a
  t interval, not a bootstrap, which has too few distinct resamples of 2-5 runs).
"""

from __future__ import annotations

import math

import numpy as np

CELLS_PER_BLOCK = 2_000_000  # replicates x values held in memory at once


# --------------------------------------------------------------------------- clusters


def cluster_bootstrap(values: np.ndarray, clusters: np.ndarray, stat: str, n_boot: int,
                      rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` replicates of the mean or median (``stat`` "mean" | "p50") of ``values``
    when whole clusters are resampled: each replicate draws as many clusters as there are,
    with replacement, and pools their values (numpy's linear-interpolation median of the
    pooled multiset). NaN values are left out; a cluster with none drops out."""
    keep = np.isfinite(values)
    v, c = values[keep], clusters[keep]
    if len(v) == 0:
        return np.full(n_boot, np.nan)
    order = np.argsort(v, kind="stable")
    v = v[order]
    _, member = np.unique(c[order], return_inverse=True)
    n_clusters = int(member.max()) + 1
    out = np.empty(n_boot)
    rows = max(1, min(n_boot, CELLS_PER_BLOCK // len(v)))
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        counts = rng.multinomial(n_clusters, np.full(n_clusters, 1.0 / n_clusters),
                                 size=stop - start)
        weights = counts[:, member].astype(np.float64)  # per value, in sorted order
        if stat == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                out[start:stop] = (weights @ v) / weights.sum(axis=1)
        else:
            out[start:stop] = _weighted_median(v, weights)
    return out


def _weighted_median(sorted_values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per row of integer ``weights``: the median of the multiset holding each sorted value
    weight times, with numpy's linear interpolation between the two middle ranks."""
    cum = np.cumsum(weights, axis=1)
    total = cum[:, -1]
    h = (total - 1) * 0.5
    lo = np.floor(h)
    # the value at 0-based rank k is the first position whose cumulative weight exceeds k
    span = total.max() + 1
    offset = np.arange(len(cum))[:, None] * span
    flat = (cum + offset).ravel()
    base = np.arange(len(cum)) * span
    at_lo = np.searchsorted(flat, base + lo, side="right") - np.arange(len(cum)) * cum.shape[1]
    at_hi = np.searchsorted(flat, base + np.minimum(lo + 1, total - 1), side="right") \
        - np.arange(len(cum)) * cum.shape[1]
    n = len(sorted_values)
    low = sorted_values[np.clip(at_lo, 0, n - 1)]
    high = sorted_values[np.clip(at_hi, 0, n - 1)]
    return np.where(total > 0, low + (h - lo) * (high - low), np.nan)


# --------------------------------------------------------------------------- time blocks


def spread_counts(starts: np.ndarray, ends: np.ndarray, amounts: np.ndarray,
                  edges: np.ndarray) -> np.ndarray:
    """Per window between consecutive ``edges``: the amounts of intervals spread evenly
    over [start, end] (an interval of zero length puts its amount at its end). Exact
    overlaps, in O((intervals + windows) log intervals)."""
    keep = np.isfinite(starts) & np.isfinite(ends) & np.isfinite(amounts) & (ends >= starts)
    a, b, amt = starts[keep], ends[keep], amounts[keep]
    point = b <= a
    out = np.histogram(b[point], bins=edges, weights=amt[point])[0].astype(np.float64)
    a, b, amt = a[~point], b[~point], amt[~point]
    if len(a) == 0:
        return out
    slope = amt / (b - a)

    def ramp(at: np.ndarray, x: np.ndarray) -> np.ndarray:
        """sum over intervals with at <= x of slope x (x - at)."""
        order = np.argsort(at)
        at_s, s_s = at[order], slope[order]
        cum_s = np.concatenate(([0.0], np.cumsum(s_s)))
        cum_sa = np.concatenate(([0.0], np.cumsum(s_s * at_s)))
        k = np.searchsorted(at_s, x, side="right")
        return x * cum_s[k] - cum_sa[k]

    cumulative = ramp(a, edges) - ramp(b, edges)
    return out + np.diff(cumulative)


def block_bootstrap_rate(counts: np.ndarray, width_s: float, block: int, n_boot: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Replicates of the mean rate (count per second) of equal-width windows, by the
    circular block bootstrap: each replicate joins randomly started runs of ``block``
    consecutive windows (wrapping around the end) until it is as long as the data."""
    n = len(counts)
    n_blocks = -(-n // block)
    out = np.empty(n_boot)
    rows = max(1, min(n_boot, CELLS_PER_BLOCK // max(1, n_blocks * block)))
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        first = rng.integers(0, n, size=(stop - start, n_blocks))
        idx = ((first[:, :, None] + np.arange(block)) % n).reshape(stop - start, -1)[:, :n]
        out[start:stop] = counts[idx].mean(axis=1) / width_s
    return out


# --------------------------------------------------------------------------- repeats


def t_quantile(p: float, df: float) -> float:
    """The p-quantile (p > 0.5) of Student's t with ``df`` degrees of freedom, by bisection
    on its CDF (Simpson's rule on the density); to ~1e-9 for df >= 1."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(x: float) -> float:
        t = np.linspace(0.0, x, 4001)
        pdf = np.exp(log_norm - (df + 1) / 2 * np.log1p(t * t / df))
        h = x / 4000
        return 0.5 + h / 3 * float(pdf[0] + pdf[-1] + 4 * pdf[1:-1:2].sum()
                                   + 2 * pdf[2:-1:2].sum())

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def pooled_t_interval(base: np.ndarray, cand: np.ndarray, confidence: float
                      ) -> tuple[float | None, float | None]:
    """The interval of mean(cand) - mean(base) over runs (one value per run), with the
    variance pooled over both sides: run-to-run noise is a property of the machine and
    the load, shared by both arms, and pooling buys degrees of freedom with 2-3 repeats.
    None when there are no degrees of freedom (one run each)."""
    a, b = base[np.isfinite(base)], cand[np.isfinite(cand)]
    df = len(a) + len(b) - 2
    if len(a) == 0 or len(b) == 0 or df < 1:
        return None, None
    ss = float(((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum())
    se = math.sqrt(ss / df) * math.sqrt(1 / len(a) + 1 / len(b))
    delta = float(b.mean() - a.mean())
    half = t_quantile(0.5 + confidence / 2, df) * se
    return delta - half, delta + half
