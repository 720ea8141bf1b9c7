"""The run directory: append-only while the run goes, folded into Parquet at the end.

Layout of ``runs/<timestamp>-<name>/``::

    run.json           spec, versions, host, seed, clock anchor, engine description
    requests.jsonl     write-ahead log: one RequestRecord per line, appended as each request ends
    chunks.jsonl       write-ahead log of ChunkEvents (one line per request: a list)
    timeline.jsonl     write-ahead log of TimelineSamples
    requests.parquet   folded from the logs at the end (and on ``summary``/``grade`` if missing):
                       the last attempt of each request, with its ``attempt`` number
    attempts.parquet   the earlier attempts of re-sent requests (only when there are some)
    chunks.parquet, timeline.parquet
    summary.json       written by the summary step
    .lock              the flock of the process that owns the run (see dirlock.py)

Why a write-ahead JSONL and not Parquet directly: a crash or Ctrl-C between two requests
must lose nothing already measured, and Parquet files cannot be appended to. Each line is
flushed as it is written; a torn last line (killed mid-write) is skipped on read.

Everything written passes through the store's ``Redactor`` (no secret reaches a file).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from reasonperf.dirlock import LOCK_FILE, DirLock
from reasonperf.errors import UsageError
from reasonperf.records import (
    CHUNK_SCHEMA,
    REQUEST_SCHEMA,
    TIMELINE_SCHEMA,
    ChunkEvent,
    RequestRecord,
    TimelineSample,
)
from reasonperf.redact import Redactor

RUN_JSON = "run.json"
ATTEMPTS = "attempts"
_LOGS = {"requests": REQUEST_SCHEMA, "chunks": CHUNK_SCHEMA, "timeline": TIMELINE_SCHEMA}


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"


def read_jsonl(path: Path) -> list[Any]:
    """Read a JSONL log, skipping a torn final line (a crash mid-write)."""
    return list(iter_jsonl(path))


def iter_jsonl(path: Path) -> Iterator[Any]:
    """The records of a JSONL log one at a time (a resume scans the log without holding it)."""
    if not path.exists():
        return
    with path.open("rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                continue


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


@dataclass(frozen=True)
class LastLines:
    """Which lines of a log hold the last row of their request_id: a bool per line number
    and the ids, in Arrow (a million requests take megabytes, not a dict of a million
    Python strings)."""

    mask: np.ndarray
    ids: pa.Array

    def is_last(self, lineno: int) -> bool:
        return lineno < len(self.mask) and bool(self.mask[lineno])


def _last_line_per_id(path: Path, keep: LastLines | None = None) -> LastLines:
    """The line of each request_id's last row (only ids in ``keep`` when given)."""
    id_parts: list[pa.Array] = []
    line_parts: list[np.ndarray] = []
    ids: list[str] = []
    lines: list[int] = []
    for lineno, row in _log_lines(path):
        ids.append(row["request_id"])
        lines.append(lineno)
        if len(ids) >= 1 << 12:
            id_parts.append(pa.array(ids, pa.string()))
            line_parts.append(np.asarray(lines, dtype=np.int64))
            ids, lines = [], []
    id_parts.append(pa.array(ids, pa.string()))
    line_parts.append(np.asarray(lines, dtype=np.int64))
    table = pa.table({"id": pa.chunked_array(id_parts, pa.string()),
                      "line": np.concatenate(line_parts)})
    n_lines = int(table.column("line").to_numpy().max()) + 1 if table.num_rows else 0
    if keep is not None:
        table = table.filter(pc.is_in(table.column("id"), value_set=keep.ids))
    last = table.group_by("id").aggregate([("line", "max")])
    mask = np.zeros(n_lines, dtype=bool)
    mask[last.column("line_max").to_numpy()] = True
    return LastLines(mask, last.column("id").combine_chunks())


def _kept(path: Path, last: LastLines) -> Iterator[dict[str, Any]]:
    for lineno, row in _log_lines(path):
        if last.is_last(lineno):
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


@dataclass
class ResumeState:
    """What the log says about a run's requests, for ``--resume``."""

    ok: set[str] = field(default_factory=set)  # ids with an ok record
    errored: set[str] = field(default_factory=set)  # ids whose records are all errors
    attempts: Counter[str] = field(default_factory=Counter)  # records (attempts) per id

    def finished(self, retry_errors: bool) -> set[str]:
        """Ids that need no resending: ok ones, and errored ones unless retried."""
        return set(self.ok) if retry_errors else self.ok | self.errored


class RunStore:
    """One run directory. Not thread-safe; the runner writes from the event loop thread."""

    def __init__(self, run_dir: Path, redactor: Redactor | None = None) -> None:
        self.dir = Path(run_dir)
        self.redactor = redactor or Redactor()
        self._files: dict[str, Any] = {}
        self._prior_attempts: Counter[str] = Counter()
        self._lock: DirLock | None = None

    # ---- ownership ----------------------------------------------------------------
    def lock(self) -> RunStore:
        """Own the directory (exclusive flock) or raise UsageError naming the holder."""
        if self._lock is None:
            self._lock = DirLock(self.dir, "run directory").acquire()
        return self

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def remove_if_unused(self) -> bool:
        """Remove this (new, locked) directory when nothing but its lock was written, e.g.
        when the engine failed before writing a log. True when removed."""
        if self._lock is None or any(p.name != LOCK_FILE for p in self.dir.iterdir()):
            return False
        shutil.rmtree(self.dir)
        self.unlock()
        return True

    # ---- creation / opening -------------------------------------------------------
    @classmethod
    def create(cls, out_dir: str | Path, name: str, exact_dir: str | Path | None = None,
               redactor: Redactor | None = None) -> RunStore:
        """A new run directory, locked by this process."""
        if exact_dir is not None:
            p = Path(exact_dir)
            if (p / RUN_JSON).exists():
                raise UsageError(f"{p} already holds a run; resume it or choose another directory")
            p.mkdir(parents=True, exist_ok=True)
            store = cls(p, redactor).lock()
            if (p / RUN_JSON).exists():  # another process created it while we locked
                store.unlock()
                raise UsageError(f"{p} already holds a run; resume it or choose another directory")
            return store
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = Path(out_dir) / f"{stamp}-{_safe_name(name)}"
        run_dir, i = base, 1
        while True:
            try:
                run_dir.mkdir(parents=True)  # atomic: two runs started together get two dirs
                break
            except FileExistsError:
                i += 1
                run_dir = base.with_name(f"{base.name}-{i}")
        return cls(run_dir, redactor).lock()

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
        obj = self.redactor.obj(obj)
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
        """Persist one finished request. Chunks first, so a record never lacks its chunks.

        The record's ``attempt`` is numbered here: one more than the records of its id in
        the log when the run was resumed (a run sends each id at most once per segment)."""
        record.attempt = self._prior_attempts[record.request_id] + 1
        if record.error:
            record.error = self.redactor.text(record.error)
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
        """Records from the log, the last one per request_id (a resent request replaces its
        cancelled or errored attempt)."""
        return self._split_rows()[0]

    def earlier_attempts(self) -> list[dict[str, Any]]:
        """The records a later attempt of the same request replaced (the history)."""
        return self._split_rows()[1]

    def _split_rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        rows: dict[str, dict[str, Any]] = {}
        earlier: list[dict[str, Any]] = []
        for row in read_jsonl(self.dir / "requests.jsonl"):
            old = rows.get(row["request_id"])
            if old is not None:
                earlier.append(old)
            rows[row["request_id"]] = row
        return list(rows.values()), earlier

    def resume_state(self) -> ResumeState:
        """Read the log once: which ids are ok, which only errored, and how many attempts
        each has had (the next record of an id is numbered after them)."""
        state = ResumeState()
        cancelled: set[str] = set()
        for row in iter_jsonl(self.dir / "requests.jsonl"):
            rid = row["request_id"]
            state.attempts[rid] += 1
            if row.get("status") == "ok":
                state.ok.add(rid)
            elif row.get("error_type") == "cancelled":
                cancelled.add(rid)
            else:
                state.errored.add(rid)
        state.errored -= state.ok
        self._prior_attempts = state.attempts
        return state

    def finished_ids(self, retry_errors: bool = False) -> set[str]:
        """Requests that need no resending: everything but cancelled attempts (and, with
        ``retry_errors``, but requests whose records are all errors)."""
        return self.resume_state().finished(retry_errors)

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
        self._fold_attempts(last)
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

    def _fold_attempts(self, last: LastLines) -> None:
        """The records a later attempt of the same request replaced -> attempts.parquet
        (written only when there are some), streamed like the requests."""
        earlier = (row for lineno, row in _log_lines(self.dir / "requests.jsonl")
                   if not last.is_last(lineno))
        writer: pq.ParquetWriter | None = None
        try:
            for batch in _batches(earlier):
                if writer is None:
                    writer = pq.ParquetWriter(self.dir / f"{ATTEMPTS}.parquet", REQUEST_SCHEMA)
                writer.write_table(pa.Table.from_pylist(batch, schema=REQUEST_SCHEMA))
        finally:
            if writer is not None:
                writer.close()

    def table(self, name: str) -> pa.Table:
        """requests / chunks / timeline as Arrow; folds the logs first if Parquet is stale."""
        self.parquet_file(name)  # folds first when stale
        return pq.read_table(self.dir / f"{name}.parquet")

    def parquet_file(self, name: str) -> pq.ParquetFile:
        """requests / chunks / timeline as a Parquet file to read in batches (a big run
        need not fit in memory); folds the logs first if Parquet is stale."""
        path = self.dir / f"{name}.parquet"
        log = self.dir / f"{name}.jsonl"
        if not path.exists() or (log.exists() and log.stat().st_mtime > path.stat().st_mtime):
            self.fold()
        return pq.ParquetFile(path)

    def update_requests(self, tables: pa.Table | Iterable[pa.Table]) -> None:
        """Rewrite requests.parquet with new columns (grading). The log is rewritten too so
        that a later fold keeps them; the earlier attempts stay in it, before the rows.

        ``tables``: the whole table, or its parts in order (grading a big run streams them:
        neither the run's rows nor its log are ever held whole)."""
        self.close()
        parts = [tables] if isinstance(tables, pa.Table) else tables
        log, parquet = self.dir / "requests.jsonl", self.dir / "requests.parquet"
        last = _last_line_per_id(log)
        tmp_log, tmp_parquet = log.with_suffix(".jsonl.tmp"), parquet.with_suffix(".parquet.tmp")
        with tmp_log.open("wb") as fh, pq.ParquetWriter(tmp_parquet, REQUEST_SCHEMA) as writer:
            earlier = (row for lineno, row in _log_lines(log)
                       if not last.is_last(lineno))
            for batch in _batches(earlier):
                fh.write(b"".join(orjson.dumps(r) + b"\n" for r in batch))
            for table in parts:
                table = _full_schema(table)
                writer.write_table(table)
                for start in range(0, table.num_rows, 4096):
                    rows = table.slice(start, 4096).to_pylist()
                    fh.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        os.replace(tmp_log, log)
        os.replace(tmp_parquet, parquet)


def _full_schema(table: pa.Table) -> pa.Table:
    """``table`` with every REQUEST_SCHEMA column, in order (a run stored before a column
    existed, e.g. attempt, gets it as nulls)."""
    for col in REQUEST_SCHEMA:
        if col.name not in table.column_names:
            table = table.append_column(col.name, pa.nulls(len(table), col.type))
    return table.select(REQUEST_SCHEMA.names).cast(REQUEST_SCHEMA)
