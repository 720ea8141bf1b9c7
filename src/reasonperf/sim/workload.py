"""The requests a simulation runs: replayed from a measured run, or sampled for a what-if.

Replay keeps each request's send time and its measured prompt, reasoning and answer
tokens exactly. A what-if draws (prompt, reasoning, answer) triples from the measured
joint distribution, per dataset and difficulty in the proportions the run had, so
long-thinking hard problems stay long-thinking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from reasonperf.errors import UsageError
from reasonperf.sim.model import SimRequest

KEEP = ("request_id", "dataset", "problem_id", "sample_index", "difficulty", "domain",
        "finish_reason", "max_tokens", "gold", "grader", "correct", "truncated",
        "extracted_answer", "extraction_method")


@dataclass
class Workload:
    requests: list[SimRequest]
    rows: list[dict[str, Any]]  # the source row of each request (labels carried over)


def usable_rows(requests: pa.Table) -> list[dict[str, Any]]:
    """Requests that finished with known token counts and timings."""
    out = []
    for r in requests.to_pylist():
        if r.get("status") != "ok" or r.get("sent_s") is None or r.get("done_s") is None:
            continue
        if not r.get("prompt_tokens") or not r.get("completion_tokens"):
            continue
        out.append(r)
    return out


def _split(r: dict[str, Any]) -> tuple[int, int]:
    """(reasoning, answer) tokens; reasoning clamped to the completion."""
    c = int(r["completion_tokens"])
    reasoning = r.get("reasoning_tokens")
    reasoning = min(c, int(reasoning)) if reasoning is not None else 0
    return reasoning, c - reasoning


def replay(requests: pa.Table) -> Workload:
    rows = usable_rows(requests)
    if not rows:
        raise UsageError("the run has no finished request with token counts to replay")
    sims = []
    for r in rows:
        reasoning, _ = _split(r)
        sims.append(SimRequest(float(r["sent_s"]), int(r["prompt_tokens"]),
                               int(r["completion_tokens"]), reasoning, r.get("max_tokens")))
    return Workload(sims, rows)


def sample(requests: pa.Table, offsets: list[float], seed: int = 0) -> Workload:
    """len(offsets) requests with lengths drawn per (dataset, difficulty) stratum."""
    rows = usable_rows(requests)
    if not rows:
        raise UsageError("the workload run has no finished request to draw lengths from")
    rng = np.random.default_rng(seed)
    strata: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for r in rows:
        strata.setdefault((r.get("dataset"), r.get("difficulty")), []).append(r)
    keys = sorted(strata, key=str)
    weights = np.array([len(strata[k]) for k in keys], dtype=float)
    picks = rng.choice(len(keys), size=len(offsets), p=weights / weights.sum())
    sims, out_rows = [], []
    for t, ki in zip(offsets, picks, strict=True):
        pool = strata[keys[ki]]
        r = pool[int(rng.integers(len(pool)))]
        reasoning, _ = _split(r)
        sims.append(SimRequest(float(t), int(r["prompt_tokens"]), int(r["completion_tokens"]),
                               reasoning, r.get("max_tokens")))
        out_rows.append(r)
    return Workload(sims, out_rows)
