"""Sampling statistics over graded rows: avg@n, pass@k, cons@n, rates, and joins.

Pure functions. Input is a list of row dicts or a pyarrow Table with the request columns
(problem_id, dataset, sample_index, correct, extracted_answer, truncated, difficulty,
domain; completion_tokens and reasoning_tokens for the joined helpers). Output is plain
JSON-serialisable dicts; a value that cannot be computed is None.

Rows whose ``correct`` is None (no gold, no grader) are left out of accuracy metrics.
A problem is identified by (dataset, problem_id).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from reasonperf.grading.numeric import normalize_answer

Row = Mapping[str, Any]
GROUP_KEYS = ("difficulty", "domain", "dataset")
UNKNOWN = "unknown"


def as_rows(data: Any) -> list[Row]:
    """Accept a list of dicts or anything with ``to_pylist()`` (pyarrow Table)."""
    if hasattr(data, "to_pylist"):
        return data.to_pylist()
    return list(data)


def _problem_key(row: Row) -> tuple[str, str]:
    return (str(row.get("dataset")), str(row.get("problem_id")))


def _graded_by_problem(rows: Iterable[Row]) -> dict[tuple[str, str], list[Row]]:
    """Graded rows per problem, each problem's rows in sample_index order (deterministic)."""
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        if row.get("correct") is not None:
            groups[_problem_key(row)].append(row)
    for samples in groups.values():
        samples.sort(key=lambda r: (r.get("sample_index") is None, r.get("sample_index") or 0))
    return dict(sorted(groups.items()))


# --------------------------------------------------------------------------- estimators


def pass_at_k_estimate(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if not 0 < k <= n or not 0 <= c <= n:
        raise ValueError(f"need 0 < k <= n and 0 <= c <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_answer(samples: Sequence[Row]) -> tuple[str | None, bool]:
    """The majority normalised answer of one problem's samples and whether it is correct.

    Samples with no extracted answer do not vote. Ties go to the answer first given (in
    sample_index order). The voted answer is correct when its first sample was graded
    correct. No votes at all: (None, False).
    """
    counts: dict[str, int] = {}
    first: dict[str, Row] = {}
    for row in samples:
        key = normalize_answer(row.get("extracted_answer"))
        if key is None:
            continue
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, row)
    if not counts:
        return None, False
    best = max(counts, key=lambda a: counts[a])  # max keeps the first of equal counts
    return best, bool(first[best].get("correct"))


# --------------------------------------------------------------------------- metrics


Groups = dict[tuple[str, str], list[Row]]


def _groups(rows: Iterable[Row] | Groups) -> Groups:
    """Rows grouped per problem; an already grouped dict passes through (so that
    accuracy_metrics groups once for all its estimators)."""
    return rows if isinstance(rows, dict) else _graded_by_problem(rows)


def avg_at_n(rows: Iterable[Row] | Groups) -> dict[str, Any]:
    """Mean correctness per problem, then over problems, with its standard error.

    The standard error is over problems (sample std with ddof=1 / sqrt(problems)): the
    uncertainty that matters when comparing runs on the same benchmark.
    """
    groups = _groups(rows)
    per_problem = np.array(
        [sum(bool(r["correct"]) for r in s) / len(s) for s in groups.values()], dtype=float
    )
    sizes = [len(s) for s in groups.values()]
    n_problems = len(per_problem)
    se = float(per_problem.std(ddof=1) / math.sqrt(n_problems)) if n_problems > 1 else None
    return {
        "avg": float(per_problem.mean()) if n_problems else None,
        "se": se,
        "n_problems": n_problems,
        "n_samples": int(sum(sizes)),
        "n_min": min(sizes) if sizes else 0,
        "n_max": max(sizes) if sizes else 0,
    }


def pass_at_k(rows: Iterable[Row] | Groups, k: int) -> dict[str, Any]:
    """Mean unbiased pass@k over the problems that have at least k graded samples."""
    values = []
    skipped = 0
    for samples in _groups(rows).values():
        n, c = len(samples), sum(bool(r["correct"]) for r in samples)
        if n < k:
            skipped += 1
            continue
        values.append(pass_at_k_estimate(n, c, k))
    return {
        "k": k,
        "value": float(np.mean(values)) if values else None,
        "n_problems": len(values),
        "n_skipped": skipped,
    }


def cons_at_n(rows: Iterable[Row] | Groups) -> dict[str, Any]:
    """Majority-vote accuracy: share of problems whose most frequent answer is correct."""
    votes = [majority_answer(s)[1] for s in _groups(rows).values()]
    return {"value": float(np.mean(votes)) if votes else None, "n_problems": len(votes)}


def truncation_rate(rows: Iterable[Row]) -> float | None:
    flags = [bool(r["truncated"]) for r in rows if r.get("truncated") is not None]
    return float(np.mean(flags)) if flags else None


def extraction_failure_rate(rows: Iterable[Row]) -> float | None:
    """Share of graded rows where no answer could be extracted."""
    flags = [r.get("extracted_answer") is None for r in rows if r.get("correct") is not None]
    return float(np.mean(flags)) if flags else None


def accuracy_metrics(rows: Sequence[Row], ks: Sequence[int] | None = None) -> dict[str, Any]:
    """avg@n (+SE), pass@k for each k, cons@n, truncation and extraction-failure rates.

    ``ks`` defaults to 1 and the smallest per-problem sample count (pass@n).
    """
    groups = _graded_by_problem(rows)
    avg = avg_at_n(groups)
    if ks is None:
        ks = sorted({1, avg["n_min"]} - {0})
    return {
        "avg_at_n": avg["avg"],
        "se": avg["se"],
        "n_problems": avg["n_problems"],
        "n_samples": avg["n_samples"],
        "n_min": avg["n_min"],
        "n_max": avg["n_max"],
        "pass_at_k": {str(k): pass_at_k(groups, k)["value"] for k in ks},
        "cons_at_n": cons_at_n(groups)["value"],
        "truncation_rate": truncation_rate(rows),
        "extraction_failure_rate": extraction_failure_rate(rows),
    }


def summarize(
    data: Any,
    ks: Sequence[int] | None = None,
    group_by: Sequence[str] = GROUP_KEYS,
) -> dict[str, Any]:
    """Accuracy metrics overall and per value of each grouping column.

    Returns {"overall": {...}, "by_difficulty": {"3": {...}, ...}, "by_domain": ...,
    "by_dataset": ...}; a missing group value is reported under "unknown".
    """
    rows = as_rows(data)
    out: dict[str, Any] = {"overall": accuracy_metrics(rows, ks)}
    for col in group_by:
        groups: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            value = row.get(col)
            groups[UNKNOWN if value is None else str(value)].append(row)
        out[f"by_{col}"] = {g: accuracy_metrics(groups[g], ks) for g in sorted(groups)}
    return out


# --------------------------------------------------------------------------- joins


def tokens_per_correct(data: Any, column: str = "completion_tokens") -> float | None:
    """Tokens spent per correct answer: sum of ``column`` over graded rows / correct rows."""
    rows = [r for r in as_rows(data) if r.get("correct") is not None]
    n_correct = sum(bool(r["correct"]) for r in rows)
    if not n_correct:
        return None
    return float(sum(r.get(column) or 0 for r in rows) / n_correct)


def accuracy_by_truncation(data: Any) -> dict[str, dict[str, Any]]:
    """Accuracy among truncated vs finished graded rows."""
    parts: dict[str, list[bool]] = {"truncated": [], "finished": []}
    for r in as_rows(data):
        if r.get("correct") is None or r.get("truncated") is None:
            continue
        parts["truncated" if r["truncated"] else "finished"].append(bool(r["correct"]))
    return {
        name: {"n": len(v), "accuracy": float(np.mean(v)) if v else None}
        for name, v in parts.items()
    }


def _distribution(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "p50": None, "p90": None}
    arr = np.asarray(values, dtype=float)
    return {
        "n": len(values),
        "mean": float(arr.mean()),
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
    }


def reasoning_tokens_by_correctness(
    data: Any, column: str = "reasoning_tokens"
) -> dict[str, dict[str, Any]]:
    """Distribution (n, mean, p50, p90) of ``column`` for correct vs wrong graded rows."""
    parts: dict[str, list[float]] = {"correct": [], "wrong": []}
    for r in as_rows(data):
        if r.get("correct") is None or r.get(column) is None:
            continue
        parts["correct" if r["correct"] else "wrong"].append(float(r[column]))
    return {name: _distribution(v) for name, v in parts.items()}
