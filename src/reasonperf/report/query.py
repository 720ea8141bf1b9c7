"""``reasonperf query "SQL"``: DuckDB SQL over every stored run below a directory.

Views (one row per stored row, across all runs; ``run_dir`` says where each came from):

- ``requests``: requests.parquet of every run + ``run_dir`` (its own ``run_id`` column
  is the one the client wrote)
- ``chunks``, ``timeline``: chunks.parquet / timeline.parquet + ``run_id``, ``run_dir``
- ``runs``: one row per run.json, its headline fields flattened plus ``run_json`` and
  ``summary`` (summary.json) as JSON, e.g. ``runs.run_json->>'$.spec.engine.max_num_seqs'``

Run directories are found by their run.json (not by globbing for Parquet files), so a
stray Parquet file elsewhere below the root never joins the views. A run whose Parquet
files are missing or older than its write-ahead logs (a run that crashed before folding)
is folded first, exactly as ``reasonperf summary`` would.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from rich.table import Table as RichTable

from reasonperf.errors import UsageError
from reasonperf.records import CHUNK_SCHEMA, REQUEST_SCHEMA, TIMELINE_SCHEMA
from reasonperf.store import RUN_JSON, RunStore

TABLES = {"requests": REQUEST_SCHEMA, "chunks": CHUNK_SCHEMA, "timeline": TIMELINE_SCHEMA}
VIEWS = (*TABLES, "runs")
CELL_CHARS = 80  # long text cells (reasoning_text) are cut in the printed table

RUNS_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("run_dir", pa.string()), ("name", pa.string()),
    ("started_unix", pa.float64()), ("engine", pa.string()), ("engine_version", pa.string()),
    ("model", pa.string()), ("served_model", pa.string()), ("workload", pa.string()),
    ("arrival", pa.string()), ("max_tokens", pa.int64()), ("seed", pa.int64()),
    ("num_requests", pa.int64()), ("reasonperf_version", pa.string()),
    ("run_json", pa.string()), ("summary_json", pa.string()),
])


DEFAULT_ROOTS = (Path("runs"), Path("studies-out"))  # where `reasonperf run` and `study` write
RESULTS_ENV = "REASONPERF_RESULTS"  # a results root of the user's choosing


def default_roots() -> list[Path]:
    """runs/ and studies-out/ (and $REASONPERF_RESULTS when set) that exist."""
    roots = [*DEFAULT_ROOTS]
    if os.environ.get(RESULTS_ENV):
        roots.insert(0, Path(os.environ[RESULTS_ENV]))
    return [r for r in roots if r.is_dir()]


Roots = Path | Sequence[Path]


def find_run_dirs(roots: Roots) -> list[Path]:
    """Every run directory (one holding run.json) at or below each root."""
    root_list = [Path(roots)] if isinstance(roots, str | Path) else [Path(r) for r in roots]
    if not root_list:
        raise UsageError("query: no runs/ or studies-out/ here; run one first (reasonperf run, "
                         "make run) or point --root at your results directory")
    for root in root_list:
        if not root.is_dir():
            raise UsageError(f"query --root {root}: no such directory; point it at your runs directory")
    dirs = sorted({p.parent for root in root_list for p in root.rglob(RUN_JSON)})
    if not dirs:
        where = ", ".join(str(r) for r in root_list)
        raise UsageError(f"query --root {where}: no run directories (with {RUN_JSON}) found; "
                         "record one with `reasonperf run` or point --root at your runs directory")
    return dirs


def _fold_if_stale(run_dir: Path) -> None:
    for name in TABLES:
        parquet, log = run_dir / f"{name}.parquet", run_dir / f"{name}.jsonl"
        if not parquet.exists() or (log.exists() and log.stat().st_mtime > parquet.stat().st_mtime):
            try:
                RunStore(run_dir).fold()
            except OSError:  # a read-only run directory: query what is there
                pass
            return


def _run_row(run_dir: Path) -> dict[str, Any]:
    info = json.loads((run_dir / RUN_JSON).read_bytes())
    summary = run_dir / "summary.json"
    spec = info.get("spec") or {}
    eng = info.get("engine") or {}

    def get(d: Any, *keys: str) -> Any:
        for k in keys:
            d = d.get(k) if isinstance(d, dict) else None
        return d

    return {
        "run_id": info.get("run_id") or run_dir.name,
        "run_dir": str(run_dir),
        "name": info.get("name"),
        "started_unix": get(info, "clock", "wall_time_unix"),
        "engine": eng.get("kind") or get(spec, "engine", "kind"),
        "engine_version": eng.get("version"),
        "model": eng.get("model") or get(spec, "engine", "model"),
        "served_model": eng.get("served_model"),
        "workload": get(spec, "workload", "name"),
        "arrival": get(spec, "arrival", "name"),
        "max_tokens": get(spec, "sampling", "max_tokens"),
        "seed": info.get("seed"),
        "num_requests": info.get("num_requests"),
        "reasonperf_version": info.get("reasonperf_version"),
        "run_json": json.dumps(info, default=str),
        "summary_json": summary.read_text(encoding="utf-8") if summary.exists() else None,
    }


def _sql_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def connect(roots: Roots) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the four views over the runs below ``roots``."""
    dirs = find_run_dirs(roots)
    for d in dirs:
        _fold_if_stale(d)
    runs = pa.Table.from_pylist([_run_row(d) for d in dirs], schema=RUNS_SCHEMA)
    files = pa.table({
        "path": [str(d / f"{name}.parquet") for name in TABLES for d in dirs],
        "kind": [name for name in TABLES for _ in dirs],
        "run_dir": [str(d) for _ in TABLES for d in dirs],
        "run_id": [rid for _ in TABLES for rid in runs["run_id"].to_pylist()],
    })
    con = duckdb.connect()
    con.register("_rp_runs", runs)
    con.register("_rp_files", files)
    for name, schema in TABLES.items():
        present = [d / f"{name}.parquet" for d in dirs if (d / f"{name}.parquet").exists()]
        if present:
            source = f"read_parquet({_sql_list(present)}, filename = true, union_by_name = true)"
        else:  # keep the view (and its columns) even when no run has the file
            con.register(f"_rp_empty_{name}", schema.empty_table().append_column("filename", pa.array([], pa.string())))
            source = f"_rp_empty_{name}"
        ident = "" if name == "requests" else "f.run_id, "
        con.execute(
            f"CREATE VIEW {name} AS SELECT {ident}t.* EXCLUDE (filename), f.run_dir "
            f"FROM {source} AS t JOIN _rp_files AS f ON f.path = t.filename AND f.kind = '{name}'"
        )
    con.execute(
        "CREATE VIEW runs AS SELECT * EXCLUDE (run_json, summary_json), "
        "run_json::JSON AS run_json, summary_json::JSON AS summary FROM _rp_runs"
    )
    return con


def _one_line(err: Exception) -> str:
    """DuckDB's message up to its first blank line (the LINE/caret part is dropped)."""
    first = re.split(r"\n\s*\n", str(err).strip(), maxsplit=1)[0]
    return " ".join(first.split())


def query(sql: str, root: Roots) -> pa.Table:
    """Run ``sql`` over the runs below ``root`` (one folder or several); bad SQL raises UsageError with DuckDB's
    one-line message. A statement that returns no rows (CREATE, SET) gives an empty table."""
    if not sql or not sql.strip():
        raise UsageError("query: the SQL is empty; e.g. reasonperf query \"SELECT * FROM runs\"")
    con = connect(root)
    try:
        rel = con.sql(sql)
        return rel.to_arrow_table() if rel is not None else pa.table({})
    except duckdb.Error as err:
        raise UsageError(f"query: {_one_line(err)} (views: {', '.join(VIEWS)})") from None
    finally:
        con.close()


def _cell(v: Any) -> str:
    if v is None:
        return "[dim]NULL[/dim]"
    if isinstance(v, float):
        return f"{v:.6g}"
    text = str(v).replace("\n", " ")
    text = text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"
    return text.replace("[", r"\[")  # rich markup


def rich_table(table: pa.Table, max_rows: int = 50, title: str | None = None) -> RichTable:
    """A query result as a rich table: at most ``max_rows`` rows, long text cut, NULL shown
    as NULL; the caption says how many rows there were."""
    out = RichTable(title=title, show_edge=False, header_style="bold")
    numeric = [pa.types.is_integer(f.type) or pa.types.is_floating(f.type) for f in table.schema]
    for f, num in zip(table.schema, numeric, strict=True):
        out.add_column(f.name, justify="right" if num else "left", overflow="fold")
    for row in table.slice(0, max_rows).to_pylist():
        out.add_row(*(_cell(row[name]) for name in table.column_names))
    n = table.num_rows
    out.caption = f"{n:,} row{'s' if n != 1 else ''}" + (f", first {max_rows:,} shown" if n > max_rows else "")
    return out
