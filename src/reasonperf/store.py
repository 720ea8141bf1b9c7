"""The run directory: append-only while the run goes, folded into Parquet at the end.

Layout of ``runs/<timestamp>-<name>/``::

    run.json           spec, versions, host, seed, clock anchor, engine description
    requests.jsonl     write-ahead log: one RequestRecord per line, appended as each request ends
    chunks.jsonl       write-ahead log of ChunkEvents (one line per request: a list)
    timeline.jsonl     write-ahead log of TimelineSamples
    requests.parquet   folded from the logs at the end (and on ``summary``/``grade`` if missing)
    chunks.parquet, timeline.parquet
    summary.json       written by the summary step

Why a write-ahead JSONL and not Parquet directly: a crash or Ctrl-C between two requests
must lose nothing already measured, and Parquet files cannot be appended to. Each line is
flushed as it is written; a torn last line (killed mid-write) is skipped on read.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from reasonperf.errors import UsageError
from reasonperf.records import (
    CHUNK_SCHEMA,
    REQUEST_SCHEMA,
    TIMELINE_SCHEMA,
    ChunkEvent,
    RequestRecord,
    TimelineSample,
)

RUN_JSON = "run.json"
_LOGS = {"requests": REQUEST_SCHEMA, "chunks": CHUNK_SCHEMA, "timeline": TIMELINE_SCHEMA}


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"


def read_jsonl(path: Path) -> list[Any]:
    """Read a JSONL log, skipping a torn final line (a crash mid-write)."""
    if not path.exists():
        return []
    out = []
    with path.open("rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return out


def _log_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) of a JSONL log, torn lines skipped; streamed."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh):
            line = line.strip()
            if not line:
                continue
            try:
                yield lineno, orjson.loads(line)
            except orjson.JSONDecodeError:
                continue


def _last_line_per_id(path: Path, keep: dict[str, int] | None = None) -> dict[str, int]:
    """request_id -> the line number of its last row (only ids in ``keep`` when given)."""
    last: dict[str, int] = {}
    for lineno, row in _log_lines(path):
        rid = row["request_id"]
        if keep is None or rid in keep:
            last[rid] = lineno
    return last


def _kept(path: Path, last: dict[str, int]) -> Iterator[dict[str, Any]]:
    for lineno, row in _log_lines(path):
        if last.get(row["request_id"]) == lineno:
            yield row


def _batches(rows: Iterable[dict[str, Any]], size: int = 4096) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


class RunStore:
    """One run directory. Not thread-safe; the runner writes from the event loop thread."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        self._files: dict[str, Any] = {}

    # ---- creation / opening -------------------------------------------------------
    @classmethod
    def create(cls, out_dir: str | Path, name: str, exact_dir: str | Path | None = None) -> RunStore:
        if exact_dir is not None:
            p = Path(exact_dir)
            if (p / RUN_JSON).exists():
                raise UsageError(f"{p} already holds a run; resume it or choose another directory")
            p.mkdir(parents=True, exist_ok=True)
            return cls(p)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path(out_dir) / f"{stamp}-{_safe_name(name)}"
        run_dir, i = base, 1
        while run_dir.exists():
            i += 1
            run_dir = base.with_name(f"{base.name}-{i}")
        run_dir.mkdir(parents=True)
        return cls(run_dir)

    @classmethod
    def open(cls, run_dir: str | Path) -> RunStore:
        p = Path(run_dir)
        if not (p / RUN_JSON).exists():
            raise UsageError(f"{p} is not a reasonperf run directory (no {RUN_JSON}); check the path")
        return cls(p)

    # ---- json files ---------------------------------------------------------------
    def write_json(self, name: str, obj: Any) -> Path:
        path = self.dir / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
        os.replace(tmp, path)
        return path

    def read_json(self, name: str) -> Any:
        path = self.dir / name
        if not path.exists():
            return None
        return orjson.loads(path.read_bytes())

    # ---- append-only logs ---------------------------------------------------------
    def _fh(self, log: str) -> Any:
        fh = self._files.get(log)
        if fh is None:
            path = self.dir / f"{log}.jsonl"
            fh = path.open("ab")
            if path.stat().st_size and not _ends_with_newline(path):
                fh.write(b"\n")  # seal a line torn by a crash so the next record stands alone
            self._files[log] = fh
        return fh

    def append_request(self, record: RequestRecord, chunks: Iterable[ChunkEvent]) -> None:
        """Persist one finished request. Chunks first, so a record never lacks its chunks."""
        ch = [[c.t_s, c.kind, c.n_tokens, c.n_chars] for c in chunks]
        cfh = self._fh("chunks")
        cfh.write(orjson.dumps({"request_id": record.request_id, "c": ch}) + b"\n")
        cfh.flush()
        rfh = self._fh("requests")
        rfh.write(orjson.dumps(asdict(record)) + b"\n")
        rfh.flush()

    def append_timeline(self, samples: Iterable[TimelineSample]) -> None:
        fh = self._fh("timeline")
        fh.write(b"".join(orjson.dumps([s.t_s, s.source, s.metric, s.value]) + b"\n" for s in samples))
        fh.flush()

    def close(self) -> None:
        for fh in self._files.values():
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        self._files.clear()

    # ---- reading ------------------------------------------------------------------
    def request_rows(self) -> list[dict[str, Any]]:
        """Records from the log, the last one per request_id (a resumed request replaces its
        cancelled attempt)."""
        rows: dict[str, dict[str, Any]] = {}
        for row in read_jsonl(self.dir / "requests.jsonl"):
            rows[row["request_id"]] = row
        return list(rows.values())

    def finished_ids(self) -> set[str]:
        """Requests that need no resending: everything but cancelled attempts."""
        return {r["request_id"] for r in self.request_rows() if r.get("error_type") != "cancelled"}

    def chunk_rows(self, keep: set[str] | None = None) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for row in read_jsonl(self.dir / "chunks.jsonl"):
            if keep is None or row["request_id"] in keep:
                out[row["request_id"]] = row["c"]
        return out

    def fold(self) -> None:
        """Fold the logs into Parquet (idempotent; the logs stay as the source of truth).

        Streamed in batches (the last record per request_id wins, as in ``request_rows``),
        so folding a run of a million requests holds one batch, not the run."""
        self.close()
        last = _last_line_per_id(self.dir / "requests.jsonl")
        with pq.ParquetWriter(self.dir / "requests.parquet", REQUEST_SCHEMA) as writer:
            for batch in _batches(_kept(self.dir / "requests.jsonl", last)):
                writer.write_table(pa.Table.from_pylist(batch, schema=REQUEST_SCHEMA))
        chunk_last = _last_line_per_id(self.dir / "chunks.jsonl", keep=last)
        del last
        with pq.ParquetWriter(self.dir / "chunks.parquet", CHUNK_SCHEMA) as writer:
            for batch in _batches(_kept(self.dir / "chunks.jsonl", chunk_last)):
                cols: dict[str, list[Any]] = {n: [] for n in CHUNK_SCHEMA.names}
                for row in batch:
                    for t, kind, n_tok, n_chars in row["c"]:
                        cols["request_id"].append(row["request_id"])
                        cols["t_s"].append(t)
                        cols["kind"].append(kind)
                        cols["n_tokens"].append(n_tok)
                        cols["n_chars"].append(n_chars)
                writer.write_table(pa.table(cols, schema=CHUNK_SCHEMA))
        tl = read_jsonl(self.dir / "timeline.jsonl")
        tcols = {n: [r[i] for r in tl] for i, n in enumerate(TIMELINE_SCHEMA.names)}
        pq.write_table(pa.table(tcols, schema=TIMELINE_SCHEMA), self.dir / "timeline.parquet")

    def table(self, name: str) -> pa.Table:
        """requests / chunks / timeline as Arrow; folds the logs first if Parquet is stale."""
        path = self.dir / f"{name}.parquet"
        log = self.dir / f"{name}.jsonl"
        if not path.exists() or (log.exists() and log.stat().st_mtime > path.stat().st_mtime):
            self.fold()
        return pq.read_table(path)

    def update_requests(self, table: pa.Table) -> None:
        """Rewrite requests.parquet with new columns (grading). The log is rewritten too so
        that a later fold keeps them."""
        self.close()
        table = table.cast(REQUEST_SCHEMA)
        rows = table.to_pylist()
        tmp = self.dir / "requests.jsonl.tmp"
        tmp.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        os.replace(tmp, self.dir / "requests.jsonl")
        pq.write_table(table, self.dir / "requests.parquet")
