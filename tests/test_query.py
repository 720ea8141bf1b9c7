"""``query``: DuckDB views over every run directory below a root."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from reasonperf.analysis.base import RunData
from reasonperf.errors import UsageError
from reasonperf.report.query import find_run_dirs, query, rich_table
from reasonperf.store import RunStore
from tests.test_report import make_run


def write_run(run_dir: Path, run: RunData, summary: dict | None = None) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({**run.info, "run_id": run_dir.name}))
    pq.write_table(run.requests, run_dir / "requests.parquet")
    pq.write_table(run.chunks, run_dir / "chunks.parquet")
    pq.write_table(run.timeline, run_dir / "timeline.parquet")
    if summary is not None:
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    write_run(root / "a", make_run(30, name="a", seed=1, error_frac=0.0), {"requests": {"total": 30}})
    write_run(root / "nested" / "b", make_run(20, name="b", seed=2, telemetry=False, chunks_per_request=0))
    stray = root / "not-a-run"
    stray.mkdir()
    pq.write_table(make_run(5, seed=3).requests, stray / "requests.parquet")  # no run.json: ignored
    return root


def test_views_span_every_run(root: Path) -> None:
    t = query("SELECT run_id, count(*) AS n, min(run_dir) AS d FROM requests GROUP BY ALL ORDER BY 1", root)
    assert t.to_pylist() == [{"run_id": "a", "n": 30, "d": str(root / "a")},
                             {"run_id": "b", "n": 20, "d": str(root / "nested" / "b")}]
    chunks = query("SELECT run_id, count(*) AS n FROM chunks GROUP BY ALL", root).to_pylist()
    assert chunks == [{"run_id": "a", "n": 30 * 4}]  # run b has no chunks
    tl = query("SELECT DISTINCT run_id FROM timeline", root).column("run_id").to_pylist()
    assert tl == ["a"]


def test_runs_view_and_json_columns(root: Path) -> None:
    rows = query(
        "SELECT run_id, name, engine, workload, arrival, max_tokens, "
        "run_json->>'$.spec.engine.max_num_seqs' AS seqs, summary->>'$.requests.total' AS total "
        "FROM runs ORDER BY run_id", root,
    ).to_pylist()
    assert [r["run_id"] for r in rows] == ["a", "b"]
    assert rows[0]["engine"] == "vllm" and rows[0]["workload"] == "math500"
    assert rows[0]["max_tokens"] == 4096 and rows[0]["seqs"] == "64"
    assert rows[0]["total"] == "30" and rows[1]["total"] is None
    joined = query("SELECT r.name, avg(q.done_s - q.sent_s) > 0 AS ok FROM requests q "
                   "JOIN runs r USING (run_id) GROUP BY ALL ORDER BY 1", root).to_pylist()
    assert joined == [{"name": "a", "ok": True}, {"name": "b", "ok": True}]


def test_bad_sql_is_a_one_line_usage_error(root: Path) -> None:
    with pytest.raises(UsageError) as err:
        query("SELEC 1", root)
    msg = str(err.value)
    assert "\n" not in msg and "Parser Error" in msg and "views: requests, chunks, timeline, runs" in msg
    with pytest.raises(UsageError, match="Referenced column"):
        query("SELECT nope FROM requests", root)
    with pytest.raises(UsageError, match="Table with name foo does not exist"):
        query("SELECT * FROM foo", root)
    with pytest.raises(UsageError, match="SQL is empty"):
        query("  ", root)


def test_missing_root_or_no_runs(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such directory"):
        query("SELECT 1", tmp_path / "nope")
    with pytest.raises(UsageError, match="no run directories"):
        find_run_dirs(tmp_path)


def test_unfolded_run_is_folded_first(tmp_path: Path) -> None:
    """A run that crashed before folding (only the write-ahead logs) is still queryable."""
    store = RunStore.create(tmp_path, "crashed")
    store.write_json("run.json", {"run_id": store.dir.name, "name": "crashed"})
    run = make_run(3, seed=5)
    from reasonperf.records import RequestRecord

    for row in run.requests.to_pylist():
        store.append_request(RequestRecord(**row), [])
    store.close()
    t = query("SELECT count(*) AS n FROM requests", tmp_path)
    assert t.column("n").to_pylist() == [3]
    assert (store.dir / "requests.parquet").exists()


def test_rich_table_caps_rows_and_shows_nulls(root: Path) -> None:
    t = query("SELECT request_id, first_visible_s, error FROM requests ORDER BY run_id, request_id", root)
    console = Console(record=True, width=120)
    console.print(rich_table(t, max_rows=5, title="requests"))
    text = console.export_text()
    assert "request_id" in text and "NULL" in text
    assert "50 rows, first 5 shown" in text
    assert text.count("\n") < 20
