"""Build summary.json for a stored run: client metrics + server section + accuracy.

A pure function of the run directory, so ``reasonperf summary`` and ``reasonperf grade``
recompute it without the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reasonperf.metrics.budget import budget_summary
from reasonperf.metrics.server import server_summary
from reasonperf.metrics.summary import summarize
from reasonperf.metrics.truth import truth_summary
from reasonperf.records import REQUEST_SCHEMA
from reasonperf.store import RUN_JSON, RunStore
from reasonperf.workload.replay import is_replay, replay_summary, replay_warning

SUMMARY_JSON = "summary.json"


def write_summary(store: RunStore, *, grade: bool = False) -> dict[str, Any]:
    """(Re)grade if asked, then compute the summary from the stored tables and write it."""
    if grade:
        grade_store(store)
    summary = compute_summary(
        store.read_json(RUN_JSON) or {},
        _read_requests(store),
        store.parquet_file("chunks"),  # streamed by the ITL block, never loaded whole
        store.table("timeline"),
    )
    store.write_json(SUMMARY_JSON, summary)
    return summary


# request columns no section of the summary reads: left on disk, so a run of a million
# requests does not hold them (any column not named here is read)
UNUSED_COLUMNS = frozenset({
    "run_id", "pool_wait_s", "think_open", "error", "http_status",
    "temperature", "top_p", "seed", "gold", "grader", "extraction_method", "attempt"})


def _read_requests(store: RunStore) -> pa.Table:
    """The request table without the UNUSED_COLUMNS (a run stored before a column existed
    simply lacks it)."""
    file = store.parquet_file("requests")
    return file.read(columns=[n for n in file.schema_arrow.names if n not in UNUSED_COLUMNS])


def compute_summary(
    info: dict[str, Any], requests: pa.Table, chunks: pa.Table | pq.ParquetFile,
    timeline: pa.Table
) -> dict[str, Any]:
    """Every section of summary.json from run.json and the three tables (writes nothing)."""
    spec = info.get("spec", {})
    segments = info.get("segments") or []
    summary = summarize(requests, chunks, slo=spec.get("slo") or {}, segments=segments)
    summary["run"] = {
        "run_id": info.get("run_id"),
        "name": info.get("name"),
        "model": (info.get("engine") or {}).get("served_model"),
        "engine": (info.get("engine") or {}).get("kind"),
        "workload": spec.get("workload", {}).get("name"),
        "arrival": spec.get("arrival", {}).get("name"),
        "continuous_usage": info.get("continuous_usage"),
    }
    summary["server"] = server_summary(timeline, summary["tokens"]["completion"])
    probes = sum(int(s.get("probe_requests") or 0) for s in segments)
    summary["truth"] = truth_summary(requests, timeline, probes)
    summary["accuracy"] = accuracy_summary(requests)
    summary["client"] = info.get("client")  # headroom self-check (client/headroom.py)
    if info.get("shards"):  # a merged sharded run: each shard's slice and clock offsets
        summary["shards"] = info["shards"]
    budget = info.get("budget") or {}
    summary["budget"] = budget_summary(requests, budget.get("budget"), budget.get("field"))
    replayed = is_replay(spec.get("workload", {}).get("name"))
    summary["replay"] = replay_summary(requests) if replayed else None
    replay_flag = replay_warning(summary["replay"]) if replayed else None
    if replay_flag:
        summary["warnings"].append(replay_flag)
    truth_flags = (summary["truth"] or {}).get("flags") or []
    summary["warnings"] = [*(info.get("warnings") or []), *summary["warnings"],
                           *(f"truth against the engine: {f}" for f in truth_flags)]
    return summary


GRADE_COLUMNS = ("extracted_answer", "extraction_method", "correct", "truncated")


GRADE_BATCH = 16_384  # rows graded (as Python dicts) at a time


def grade_store(store: RunStore) -> int:
    """Grade every row that names a grader and rewrite the request table with the grade
    columns. Deterministic: grading a run twice gives the same columns. Returns the
    number of rows graded. Streamed in batches of GRADE_BATCH rows, so grading a run of a
    million requests holds one batch of rows, not the run."""
    file = store.parquet_file("requests")
    if not _count_gradable(file):
        return 0
    graded = 0

    def graded_batches() -> Iterator[pa.Table]:
        nonlocal graded
        from reasonperf.grading.grade_run import grade_rows

        for batch in file.iter_batches(batch_size=GRADE_BATCH):
            rows = batch.to_pylist()
            todo = [i for i, r in enumerate(rows) if r.get("grader") and r.get("status") == "ok"]
            if todo:
                grades = grade_rows([rows[i] for i in todo])
                for i, g in zip(todo, grades, strict=True):
                    rows[i].update({k: g[k] for k in GRADE_COLUMNS})
                graded += len(todo)
            yield pa.Table.from_pylist(rows, schema=REQUEST_SCHEMA)

    store.update_requests(graded_batches())
    return graded


def _count_gradable(file: pq.ParquetFile) -> int:
    """Rows with a grader that ended ok (read from two columns only)."""
    names = file.schema_arrow.names
    if "grader" not in names or "status" not in names:
        return 0
    t = file.read(columns=["grader", "status"])
    gradable = pc.and_(pc.fill_null(pc.not_equal(t.column("grader"), ""), False),
                       pc.fill_null(pc.equal(t.column("status"), "ok"), False))
    return int(pc.sum(gradable).as_py() or 0)


def accuracy_summary(requests: pa.Table) -> dict[str, Any] | None:
    """avg@n with its standard error (over problems), pass@k, cons@n, overall and per
    difficulty / domain / dataset, plus the joins that put accuracy next to cost."""
    from reasonperf.grading import stats
    from reasonperf.grading.compact_rows import STATS_COLUMNS, stats_rows

    cols = [c for c in STATS_COLUMNS if c in requests.column_names]  # copy only those
    graded = requests.select(cols).filter(pc.is_valid(requests.column("correct")))
    rows: Any = stats_rows(graded)  # ten columns per row, not a dict of all of them
    if not rows:
        return None
    out = stats.summarize(rows)
    out["tokens_per_correct"] = stats.tokens_per_correct(rows)
    out["by_truncation"] = stats.accuracy_by_truncation(rows)
    out["reasoning_tokens_by_correctness"] = stats.reasoning_tokens_by_correctness(rows)
    return out
