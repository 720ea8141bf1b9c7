"""Any size (issue 10.6): the end of a run (grading, summary) holds no per-row Python
object for the whole run, and gives the numbers it gave when it loaded everything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from reasonperf.metrics.itl_stream import itl_stats_batches
from reasonperf.metrics.request import itl_stats
from reasonperf.records import CHUNK_SCHEMA, RequestRecord
from reasonperf.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def _chunks(n_requests: int, seed: int = 1) -> tuple[pa.Table, list[str]]:
    """Each request's chunks together (as fold writes them), ids in no sorted order, with
    uncounted chunks, zero-token chunks, shared timestamps and one-event requests."""
    rng = np.random.default_rng(seed)
    ids = [f"q{int(i)}" for i in rng.permutation(n_requests)]
    rows = []
    for rid in ids:
        t = float(rng.random())
        for _ in range(int(rng.integers(1, 8))):
            t += float(rng.choice([0.0, 0.01, 0.03]))  # 0.0: same read as the last chunk
            n = rng.choice([None, 0, 1, 1, 2, 3], p=[0.03, 0.07, 0.4, 0.3, 0.1, 0.1])
            rows.append({"request_id": rid, "t_s": t, "kind": "answer",
                         "n_tokens": None if n is None else int(n), "n_chars": 3})
    return pa.Table.from_pylist(rows, schema=CHUNK_SCHEMA), ids


@pytest.mark.parametrize("batch_rows", [1, 7, 100_000])
def test_streamed_itl_is_exactly_the_whole_table_itl(batch_rows):
    chunks, ids = _chunks(300)
    ok_ids = pa.array(sorted(ids[:250], key=lambda _: np.random.default_rng(2).random()))
    ok_chunks = chunks.filter(pa.compute.is_in(chunks.column("request_id"), ok_ids))
    want, want_info = itl_stats(ok_chunks)
    streamed = itl_stats_batches(chunks.to_batches(max_chunksize=batch_rows), ok_ids)
    assert streamed is not None
    values, info, with_chunks = streamed
    assert np.array_equal(values, want)  # same values in the same order: same mean and std
    assert info == want_info
    assert with_chunks == len(set(ok_chunks.column("request_id").to_pylist()))


def test_streamed_itl_refuses_chunks_not_grouped_by_request():
    chunks, ids = _chunks(20)
    mixed = pa.concat_tables([chunks, chunks.slice(0, 1)])  # the first request again at the end
    assert itl_stats_batches(mixed.to_batches(max_chunksize=5), pa.array(ids)) is None


def test_summary_of_chunks_not_grouped_by_request_is_unchanged():
    from reasonperf.metrics.summary import summarize
    from reasonperf.records import REQUEST_SCHEMA

    chunks, ids = _chunks(40)
    reqs = pa.Table.from_pylist([{"request_id": r, "status": "ok", "sent_s": 0.0,
                                  "done_s": 2.0} for r in ids], schema=REQUEST_SCHEMA)
    order = np.random.default_rng(3).permutation(chunks.num_rows)
    shuffled = chunks.take(pa.array(order))
    assert summarize(reqs, shuffled)["latency"]["itl"] == summarize(reqs, chunks)["latency"]["itl"]


def _peak_bytes(tmp_path: Path, n: int) -> int:
    """Peak Python + Arrow bytes of write_summary on a stored run of n requests, measured
    in a fresh process (tests/memory_probe.py)."""
    run = tmp_path / f"run{n}"
    env_cmd = [sys.executable, str(ROOT / "tests" / "memory_probe.py")]
    subprocess.run([*env_cmd, "write", str(run), str(n)], check=True, cwd=ROOT)
    out = subprocess.run([*env_cmd, "measure", str(run)], check=True, cwd=ROOT,
                         capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1])


def test_summary_memory_per_request_stays_small(tmp_path):
    """The summary keeps one number per request and metric (exact percentiles need them)
    but no Python object per chunk nor a dict per row: the peak grows by under 1.2 kB per
    graded request with 10 chunks (about 0.86 kB here; loading the tables whole and the
    graded rows as dicts grew by about 3.8 kB)."""
    small, big = _peak_bytes(tmp_path, 10_000), _peak_bytes(tmp_path, 40_000)
    per_request = (big - small) / 30_000
    assert per_request < 1200, f"{per_request:.0f} bytes per request ({small=} {big=})"


def _graded_run(tmp_path: Path, name: str) -> RunStore:
    store = RunStore.create(tmp_path, name)
    store.write_json("run.json", {})
    for i in range(9):
        store.append_request(RequestRecord(
            request_id=f"r{i}", run_id="x", dataset="d", problem_id=f"p{i % 3}", sample_index=i,
            sent_s=0.0, first_token_s=0.1, done_s=1.0, completion_tokens=5, grader="gsm8k",
            gold=str(i % 2), answer_text=f"The answer is {i % 3}", finish_reason="stop",
            status="ok" if i != 4 else "error"), [])
    store.append_request(RequestRecord(
        request_id="r0", run_id="x", dataset="d", problem_id="p0", sample_index=0,
        grader="gsm8k", gold="0", answer_text="#### 0", finish_reason="stop"), [])
    store.fold()
    return store


def test_grading_in_batches_grades_like_one_batch(tmp_path, monkeypatch):
    from reasonperf import summary_io

    whole = _graded_run(tmp_path, "whole")
    assert summary_io.grade_store(whole) == 8
    monkeypatch.setattr(summary_io, "GRADE_BATCH", 2)
    parts = _graded_run(tmp_path, "parts")
    assert summary_io.grade_store(parts) == 8
    cols = [*summary_io.GRADE_COLUMNS, "request_id", "attempt"]
    assert parts.table("requests").select(cols) == whole.table("requests").select(cols)
    assert [r["correct"] for r in whole.table("requests").to_pylist()].count(True) >= 1
    assert [r["request_id"] for r in parts.earlier_attempts()] == ["r0"]  # history kept
    parts.fold()  # the rewritten log folds to the same graded table
    assert parts.table("requests").select(cols) == whole.table("requests").select(cols)


def test_accuracy_from_compact_rows_is_the_accuracy_from_dicts():
    import json

    from reasonperf.grading import stats
    from reasonperf.records import REQUEST_SCHEMA
    from reasonperf.summary_io import accuracy_summary

    rng = np.random.default_rng(4)
    rows = [{"request_id": f"r{i}", "status": "ok", "dataset": rng.choice(["a", "b", None]),
             "problem_id": f"p{int(rng.integers(0, 7))}",
             "sample_index": None if i % 11 == 0 else int(rng.integers(0, 4)),
             "difficulty": rng.choice(["1", "2", None]), "domain": "math",
             "correct": rng.choice([True, False, None]),
             "extracted_answer": rng.choice(["1", " 1", "2", None]),
             "truncated": rng.choice([True, False, None]),
             "completion_tokens": int(rng.integers(1, 900)),
             "reasoning_tokens": None if i % 5 == 0 else int(rng.integers(0, 600))}
            for i in range(400)]
    table = pa.Table.from_pylist(rows, schema=REQUEST_SCHEMA)
    graded = [r for r in table.to_pylist() if r["correct"] is not None]
    want = stats.summarize(graded)
    want.update(tokens_per_correct=stats.tokens_per_correct(graded),
                by_truncation=stats.accuracy_by_truncation(graded),
                reasoning_tokens_by_correctness=stats.reasoning_tokens_by_correctness(graded))
    assert json.dumps(accuracy_summary(table)) == json.dumps(want)  # same numbers, same order


def _fold_peak(tmp_path: Path, n: int) -> int:
    """tracemalloc peak of folding logs of n requests (one resent) into Parquet."""
    import tracemalloc

    import orjson

    run = tmp_path / f"fold{n}"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with (run / "requests.jsonl").open("wb") as req, (run / "chunks.jsonl").open("wb") as ch:
        for i in [*range(n), 0]:
            rid = f"request-{i:09d}"
            req.write(orjson.dumps({"request_id": rid, "status": "ok", "sent_s": 0.0}) + b"\n")
            ch.write(orjson.dumps({"request_id": rid, "c": [[0.1, "answer", 1, 3]]}) + b"\n")
    store = RunStore.open(run)
    tracemalloc.start()
    store.fold()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert store.table("requests").num_rows == n and store.table("chunks").num_rows == n
    return peak


def test_fold_memory_per_request_stays_small(tmp_path):
    """Which line is each request's last is kept in Arrow and a bool per line, not in a
    dict of Python strings (that grew by about 220 bytes per request; now about 50)."""
    small, big = _fold_peak(tmp_path, 20_000), _fold_peak(tmp_path, 80_000)
    per_request = (big - small) / 60_000
    assert per_request < 100, f"{per_request:.0f} bytes per request ({small=} {big=})"
