"""Builders of small stored runs with known answers, shared by the analysis tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from reasonperf.analysis.base import RunData
from reasonperf.records import CHUNK_SCHEMA, REQUEST_SCHEMA, TIMELINE_SCHEMA


def request(i: int, *, sent: float = 0.0, e2e: float = 1.0, scheduled: float | None = None,
            ttft: float = 0.1, ttfvt: float | None = None, **cols: Any) -> dict[str, Any]:
    """One ok request row: sent at ``sent``, done ``e2e`` seconds later."""
    row: dict[str, Any] = {
        "request_id": f"req-{i}", "run_id": "run", "dataset": "ds", "problem_id": f"p{i}",
        "sample_index": 0, "status": "ok", "finish_reason": "stop",
        "scheduled_s": sent if scheduled is None else scheduled, "sent_s": sent,
        "first_token_s": sent + ttft,
        "first_visible_s": sent + (ttfvt if ttfvt is not None else e2e / 2),
        "done_s": sent + e2e, "completion_tokens": 100, "reasoning_tokens": 80,
        "answer_tokens": 20,
    }
    row.update(cols)
    return row


def requests_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=REQUEST_SCHEMA)


def timeline_table(series: dict[str, tuple[list[float], list[float]]],
                   source: str = "engine") -> pa.Table:
    """{metric: (times, values)} -> long-format timeline rows."""
    rows = [{"t_s": t, "source": source, "metric": metric, "value": v}
            for metric, (ts, vs) in series.items() for t, v in zip(ts, vs, strict=True)]
    return pa.Table.from_pylist(rows, schema=TIMELINE_SCHEMA)


def make_run(rows: Iterable[dict[str, Any]], *, timeline: pa.Table | None = None,
             spec: dict[str, Any] | None = None, name: str = "run") -> RunData:
    return RunData(
        run_dir=f"/runs/{name}",
        info={"name": name, "spec": spec or {"arrival": {"name": "poisson"}}},
        requests=requests_table(rows),
        chunks=CHUNK_SCHEMA.empty_table(),
        timeline=timeline if timeline is not None else TIMELINE_SCHEMA.empty_table(),
    )


def test_builders_follow_the_record_schemas():
    run = make_run([request(0), request(1, e2e=2.0, difficulty="3")],
                   timeline=timeline_table({"kv_cache_usage": ([0.0, 1.0], [0.1, 0.2])}))
    assert run.requests.schema == REQUEST_SCHEMA
    assert run.timeline.schema == TIMELINE_SCHEMA
    assert run.requests.column("done_s").to_pylist() == [1.0, 2.0]
    assert run.label == "run"
