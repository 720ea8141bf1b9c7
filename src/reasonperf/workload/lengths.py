"""Length fits (issue 14): the joint distribution of (prompt, reasoning, answer) tokens per
dataset and difficulty, from stored runs, for ``--workload replay:lengths.json``.

Per group the fit keeps the observed triples (the empirical joint: sampling a triple
keeps the correlation between prompt, reasoning and answer lengths) and, per marginal,
its sorted values and a log-normal fitted to the upper part for extrapolation past the
data. A sample takes a random observed triple and, per marginal, a random point inside
that triple's rank cell: below ``tail_from`` the empirical quantile at it, above it the
fitted log-normal's quantile, joined to the empirical one at ``tail_from``.

Log-normals are fitted to ``tokens + 1`` (an answer can be 0 tokens long). Fit quality is
the Kolmogorov-Smirnov statistic of the whole-marginal log-normal (maximum likelihood)
against the data (``ks``, ``ks_p``) and of the tail fit against the values above
``tail_from`` (``tail_ks``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import stats

from reasonperf.analysis.base import RunData
from reasonperf.errors import UsageError

FORMAT = "reasonperf.lengths/1"
PARTS = ("prompt_tokens", "reasoning_tokens", "answer_tokens")
TAIL_FROM = 0.9
MAX_ROWS = 5000  # triples kept per group (a seeded subsample beyond)
MIN_ROWS = 2


def _rows(run: RunData) -> tuple[list[tuple[str, str, int, int, int]], int]:
    """(dataset, difficulty, prompt, reasoning, answer) of the ok requests with all three
    counts known, and how many ok requests were left out for an unknown count."""
    cols = ["status", "dataset", "difficulty", *PARTS]
    out, unknown = [], 0
    for r in run.requests.select(cols).to_pylist():
        if r["status"] != "ok":
            continue
        if any(r[p] is None for p in PARTS):
            unknown += 1
            continue
        out.append((r["dataset"], r["difficulty"] or "", *(int(r[p]) for p in PARTS)))
    return out, unknown


def fit_marginal(values: np.ndarray, tail_from: float = TAIL_FROM) -> dict[str, Any]:
    """Sorted values, the whole-marginal log-normal and the upper-part log-normal."""
    x = np.sort(values.astype(float))
    logs = np.log(x + 1)
    mu, sigma = float(logs.mean()), float(logs.std(ddof=1)) if len(x) > 1 else 0.0
    whole: dict[str, Any] = {"mu": mu, "sigma": sigma, "ks": None, "ks_p": None}
    if sigma > 0:
        res = stats.kstest(x + 1, stats.lognorm(s=sigma, scale=np.exp(mu)).cdf)
        whole.update(ks=float(res.statistic), ks_p=float(res.pvalue))
    # upper part: log(q_u) = mu + sigma * z_u over the quantile levels above tail_from
    levels = np.linspace(tail_from, 1.0, 12)[:-1]
    q = np.quantile(logs, levels)
    z = stats.norm.ppf(levels)
    t_sigma, t_mu = (np.polyfit(z, q, 1) if np.ptp(q) > 0 else (0.0, float(q[0])))
    tail: dict[str, Any] = {"mu": float(t_mu), "sigma": float(max(t_sigma, 0.0)), "ks": None}
    upper = x[x >= np.quantile(x, tail_from)] + 1
    if tail["sigma"] > 0 and len(upper) >= MIN_ROWS:
        dist = stats.lognorm(s=tail["sigma"], scale=np.exp(tail["mu"]))
        lo = dist.cdf(upper.min())
        if lo < 1:
            trunc = lambda v: (dist.cdf(v) - lo) / (1 - lo)  # noqa: E731
            tail["ks"] = float(stats.kstest(upper, trunc).statistic)
    return {"values": x.astype(int).tolist(), "lognormal": whole, "tail": tail}


def fit_lengths(runs: Iterable[RunData], tail_from: float = TAIL_FROM, seed: int = 0
                ) -> dict[str, Any]:
    """The lengths file's content for ``runs`` (grouped by dataset and difficulty)."""
    if not 0 < tail_from < 1:
        raise UsageError(f"--tail-from must be between 0 and 1 (got {tail_from})")
    groups: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    sources, unknown = [], 0
    for run in runs:
        rows, n_unknown = _rows(run)
        unknown += n_unknown
        sources.append({"run": run.run_dir, "rows": len(rows), "unknown_counts": n_unknown})
        for ds, diff, *triple in rows:
            groups.setdefault((ds, diff), []).append((triple[0], triple[1], triple[2]))
    rng = np.random.default_rng(seed)
    out = []
    for (ds, diff), triples in sorted(groups.items()):
        if len(triples) < MIN_ROWS:
            continue
        arr = np.asarray(triples, dtype=np.int64)
        kept = arr if len(arr) <= MAX_ROWS else arr[rng.choice(len(arr), MAX_ROWS, False)]
        out.append({
            "dataset": ds, "difficulty": diff or None, "n": len(arr),
            "rows": kept.tolist(),
            "marginals": {p: fit_marginal(arr[:, i], tail_from) for i, p in enumerate(PARTS)},
        })
    if not out:
        raise UsageError("no ok requests with prompt, reasoning and answer token counts in "
                         "these runs; fit needs runs whose records have token counts")
    return {"format": FORMAT, "tail_from": tail_from, "groups": out, "sources": sources,
            "left_out_unknown_counts": unknown}


def _value(marginal: dict[str, Any], u: float, tail_from: float) -> float:
    values = np.asarray(marginal["values"], dtype=float)
    if u <= tail_from or marginal["tail"]["sigma"] <= 0:
        return float(np.quantile(values, min(u, 1.0)))
    t = marginal["tail"]
    dist = stats.lognorm(s=t["sigma"], scale=np.exp(t["mu"]))
    joint = float(np.quantile(values, tail_from)) + 1  # continuous at tail_from
    return joint * float(dist.ppf(u)) / float(dist.ppf(tail_from)) - 1


def sample_group(group: dict[str, Any], n: int, rng: np.random.Generator, tail_from: float
                 ) -> list[tuple[int, int, int]]:
    """``n`` (prompt, reasoning, answer) targets from one group's fit."""
    rows = np.asarray(group["rows"], dtype=float)
    ranks = [stats.rankdata(rows[:, i], method="ordinal") - 1 for i in range(len(PARTS))]
    out = []
    for idx in rng.integers(0, len(rows), n):
        triple = []
        for i, part in enumerate(PARTS):
            u = (ranks[i][idx] + rng.random()) / len(rows)
            triple.append(max(0, int(round(_value(group["marginals"][part], u, tail_from)))))
        out.append((max(1, triple[0]), triple[1], triple[2]))
    return out


def check_lengths(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, dict) or data.get("format") != FORMAT or not data.get("groups"):
        raise UsageError(f"{source} is not a lengths file ({FORMAT}); make one with "
                         "reasonperf workload fit RUN... -o lengths.json")
    return data
