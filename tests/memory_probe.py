"""Peak memory of write_summary on a synthetic stored run of N requests (issue 10.6).

Run as a script, each step in its own process so Arrow's pool peak is the summary's
alone: ``python tests/memory_probe.py write DIR N`` stores the run, ``... measure DIR``
prints the peak of Python/numpy allocations (tracemalloc) plus the peak of Arrow's memory
pool, in bytes, so the test compares sizes without timing anything.
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHUNKS_PER_REQUEST = 10


def write_run(run_dir: Path, n: int) -> None:
    """requests.parquet, chunks.parquet and timeline.parquet of a graded run of ``n``
    requests (50 problems), each with 10 one-token chunks (the layout fold writes: a request's chunks together)."""
    from reasonperf.records import CHUNK_SCHEMA, REQUEST_SCHEMA, TIMELINE_SCHEMA

    rng = np.random.default_rng(0)
    ids = np.array([f"r{i:08d}" for i in rng.permutation(n)], dtype=object)
    sent = np.arange(n) * 0.01
    ok = rng.random(n) > 0.02
    cols = {f.name: pa.nulls(n, f.type) for f in REQUEST_SCHEMA}
    cols.update(
        request_id=pa.array(ids, pa.string()), sent_s=pa.array(sent),
        scheduled_s=pa.array(sent), first_token_s=pa.array(sent + 0.1),
        first_visible_s=pa.array(sent + 0.2), reasoning_end_s=pa.array(sent + 0.2),
        done_s=pa.array(sent + 1.0), prompt_tokens=pa.array(np.full(n, 20)),
        completion_tokens=pa.array(np.full(n, CHUNKS_PER_REQUEST)),
        reasoning_tokens=pa.array(np.full(n, 4)), answer_tokens=pa.array(np.full(n, 6)),
        token_count_source=pa.array(["usage"] * n), finish_reason=pa.array(["stop"] * n),
        usage_completion_tokens=pa.array(np.full(n, CHUNKS_PER_REQUEST)),
        chunk_tokens_sum=pa.array(np.full(n, CHUNKS_PER_REQUEST)),
        status=pa.array(np.where(ok, "ok", "error")),
        dataset=pa.array(["synthetic"] * n), problem_id=pa.array([f"p{i % 50}" for i in range(n)]),
        sample_index=pa.array(np.arange(n, dtype=np.int32) // 50),
        correct=pa.array(np.where(ok, rng.random(n) > 0.5, None), pa.bool_()),
        extracted_answer=pa.array([str(i % 7) for i in range(n)]),
        error_type=pa.array(np.where(ok, None, "http_5xx")),
    )
    pq.write_table(pa.table(cols, schema=REQUEST_SCHEMA), run_dir / "requests.parquet")
    with pq.ParquetWriter(run_dir / "chunks.parquet", CHUNK_SCHEMA) as writer:
        for start in range(0, n, 4096):
            part = slice(start, min(n, start + 4096))
            m = part.stop - part.start
            t = (sent[part, None] + 0.1 + rng.random((m, CHUNKS_PER_REQUEST)).cumsum(1) * 0.01)
            writer.write_table(pa.table({
                "request_id": pa.array(np.repeat(ids[part], CHUNKS_PER_REQUEST), pa.string()),
                "t_s": pa.array(t.ravel()),
                "kind": pa.array(["answer"] * (m * CHUNKS_PER_REQUEST)),
                "n_tokens": pa.array(np.ones(m * CHUNKS_PER_REQUEST, dtype=np.int32)),
                "n_chars": pa.array(np.full(m * CHUNKS_PER_REQUEST, 4, dtype=np.int32)),
            }, schema=CHUNK_SCHEMA))
    pq.write_table(TIMELINE_SCHEMA.empty_table(), run_dir / "timeline.parquet")
    (run_dir / "run.json").write_text("{}")


def peak_bytes(run_dir: Path) -> int:
    """Peak Python + Arrow memory of write_summary on the stored run."""
    from reasonperf.store import RunStore
    from reasonperf.summary_io import write_summary

    store = RunStore.open(run_dir)
    pool = pa.default_memory_pool()
    tracemalloc.start()
    write_summary(store)
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return py_peak + pool.max_memory()


if __name__ == "__main__":
    step, run = sys.argv[1], Path(sys.argv[2])
    if step == "write":
        run.mkdir(parents=True, exist_ok=True)
        write_run(run, int(sys.argv[3]))
    else:
        print(peak_bytes(run))
