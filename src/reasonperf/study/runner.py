"""Run a planned study: engine lifecycle per group, one run per cell, index, report.

Layout of the study's output folder (default ``studies-out/<name>/``)::

    study.json        the index: every cell with its settings, status and error; sessions
    report.html       the study report (written at the end from the finished cells)
    <cell-id>/        one run directory per cell (run.json, parquet tables, summary.json)
                      plus cell.json, the cell's status, rewritten last when it ends
    _engines/<group>/ the engine logs, one folder per engine start
    _failed/          earlier attempts of cells that failed (a rerun starts them afresh)

Resuming: a rerun skips cells whose cell.json says ``ok`` (for the same settings),
resumes cells that were cut off (killed, Ctrl-C: ``running`` / ``partial``) with
``execute_run(resume=...)``, and runs failed cells again from scratch. A cell that fails
(its engine does not start, the engine dies, the cell times out, every request errors)
is recorded with its error and the engine's log tail, and the study goes on.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from reasonperf import __version__
from reasonperf.dirlock import DirLock
from reasonperf.engines import Engine
from reasonperf.engines.process import one_line
from reasonperf.errors import UsageError
from reasonperf.redact import redact
from reasonperf.run import execute_run
from reasonperf.store import RUN_JSON
from reasonperf.study.engine_slots import (  # noqa: F401  (EngineSlots is public here too)
    TAIL_LINES,
    EngineSlots,
    EngineStartFailure,
    clear_prefix_cache,
    engine_alive,
    engine_tail,
)
from reasonperf.study.expand import Cell, EngineGroup, StudyPlan, resolve_model
from reasonperf.study.progress import StudyProgress

CELL_JSON = "cell.json"
STUDY_JSON = "study.json"
REPORT_HTML = "report.html"
ENGINES_DIR = "_engines"
FAILED_DIR = "_failed"
DONE, FAILED, SKIPPED, RUNNING, PARTIAL, PENDING = (
    "ok", "failed", "skipped", "running", "partial", "pending")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_json(path: Path, obj: Any) -> None:
    """Atomic: a reader (or a rerun after a kill) never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(redact(obj), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


# --------------------------------------------------------------------------- watchdog


class _Watchdog:
    """Interrupts the running cell (a SIGINT to the main thread, which execute_run turns
    into an orderly stop) when it passes its deadline or its engine dies."""

    def __init__(self, engine: Engine, timeout_s: float | None, poll_s: float) -> None:
        self.engine = engine
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Signals reach only the main thread; elsewhere the cell simply runs unguarded.
        self.enabled = threading.current_thread() is threading.main_thread()

    def start(self) -> None:
        if self.enabled:
            self._thread = threading.Thread(target=self._watch, name="study-watchdog",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self) -> None:
        deadline = time.monotonic() + self.timeout_s if self.timeout_s else None
        while not self._stop.wait(self.poll_s):
            reason = None
            if deadline is not None and time.monotonic() >= deadline:
                reason = f"timeout: the cell ran past cell_timeout_s={self.timeout_s:g} s"
            elif not engine_alive(self.engine):
                reason = "the engine died during the cell"
            if reason is not None:
                with self._lock:
                    if self._stop.is_set():
                        return
                    self.reason = reason
                    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
                return


# --------------------------------------------------------------------------- cells


class StudyInterrupted(Exception):
    """The user stopped the study (Ctrl-C); finished cells are kept."""


def cell_dir(plan: StudyPlan, cell: Cell) -> Path:
    return plan.root / cell.id


def read_cell_state(plan: StudyPlan, cell: Cell) -> dict[str, Any] | None:
    state = read_json(cell_dir(plan, cell) / CELL_JSON)
    return state if isinstance(state, dict) else None


def check_settings(plan: StudyPlan) -> None:
    """Refuse to mix results: a finished or partial cell written for other settings of the
    same cell id (the spec was edited since) must be moved away or written elsewhere. A
    failed cell is run again anyway (its attempt is kept aside)."""
    for cell in plan.cells:
        state = read_cell_state(plan, cell)
        if (state and state.get("status") in (DONE, RUNNING, PARTIAL)
                and state.get("spec_hash") not in (None, cell.spec_hash)):
            raise UsageError(
                f"{cell_dir(plan, cell)} was run with other settings than the spec now gives "
                "(the spec changed); pass --out DIR for a fresh study or delete that folder"
            )


def _highlights(summary: dict[str, Any]) -> dict[str, Any]:
    def dig(*keys: str) -> Any:
        node: Any = summary
        for k in keys:
            if not isinstance(node, dict):
                return None
            node = node.get(k)
        return node

    return {
        "requests": dig("requests", "total"),
        "ok": dig("requests", "ok"),
        "errors": dig("requests", "errors"),
        "accuracy": dig("accuracy", "overall", "avg_at_n"),
        "e2e_p50_s": dig("latency", "e2e", "p50"),
        "ttfvt_p50_s": dig("latency", "ttfvt", "p50"),
        "output_tps": dig("throughput", "output_tps"),
    }


def _first_error(run_dir: Path) -> str:
    from reasonperf.store import RunStore

    for row in RunStore(run_dir).request_rows():
        if row.get("status") != "ok":
            return f"{row.get('error_type')}: {row.get('error')}"
    return ""


@dataclass
class CellRun:
    status: str
    resumed: bool
    record: dict[str, Any]


def run_cell(plan: StudyPlan, cell: Cell, engine: Engine, console: Console,
             poll_s: float = 0.5, prefix_cache: str | None = None) -> CellRun:
    """Run (or resume) one cell on a running engine; cell.json is written last.
    ``prefix_cache``: what was done to the engine's prefix cache before it (recorded)."""
    root = cell_dir(plan, cell)
    state = read_cell_state(plan, cell) or {}
    has_run = (root / RUN_JSON).exists()
    resume = has_run and state.get("status") in (RUNNING, PARTIAL)
    if has_run and not resume:  # a failed attempt: keep it aside, start afresh
        _archive(plan, cell, int(state.get("attempt") or 0))
    record: dict[str, Any] = {
        "id": cell.id, "status": RUNNING, "spec_hash": cell.spec_hash,
        "attempt": int(state.get("attempt") or 0) + (0 if resume else 1),
        "resumed": resume, "started": _now(), "levels": cell.levels, "group": cell.group,
        "prefix_cache": prefix_cache,
    }
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / CELL_JSON, record)
    spec = cell.spec.model_copy(update={"engine": cell.spec.engine.model_copy(
        update={"model": resolve_model(cell.spec.engine.model)})})
    dog = _Watchdog(engine, plan.spec.cell_timeout_s, poll_s)
    t0 = time.monotonic()
    result = None
    try:
        dog.start()
        try:
            result = execute_run(None if resume else spec, resume=root if resume else None,
                                 engine=engine, out_dir=root, console=console)
        finally:
            dog.stop()
    except KeyboardInterrupt:
        if dog.reason is None:
            _finish(root, record, PARTIAL, t0)
            raise StudyInterrupted from None
        result = None
    except UsageError as err:
        return _fail(root, record, t0, " ".join(str(err).split()), [])
    except Exception as err:  # noqa: BLE001 - one broken cell must not end the study
        return _fail(root, record, t0, f"{type(err).__name__}: {err}", [],
                     traceback.format_exc())
    if dog.reason is not None:
        return _fail(root, record, t0, dog.reason, engine_tail(engine))
    assert result is not None
    if result.interrupted:
        _finish(root, record, PARTIAL, t0)
        raise StudyInterrupted
    if not engine_alive(engine):
        return _fail(root, record, t0, "the engine died during the cell", engine_tail(engine))
    record["summary"] = _highlights(result.summary)
    record["warnings"] = list(result.warnings)
    if not record["summary"]["ok"]:
        return _fail(root, record, t0,
                     f"every request failed ({_first_error(root) or 'no request ran'})", [])
    _finish(root, record, DONE, t0)
    return CellRun(DONE, resume, record)


def _finish(root: Path, record: dict[str, Any], status: str, t0: float) -> None:
    record.update(status=status, ended=_now(), wall_s=round(time.monotonic() - t0, 3))
    write_json(root / CELL_JSON, record)


def _fail(root: Path, record: dict[str, Any], t0: float, error: str, tail: list[str],
          trace: str | None = None) -> CellRun:
    record.update(error=error, log_tail=tail)
    if trace:
        record["traceback"] = trace
    _finish(root, record, FAILED, t0)
    return CellRun(FAILED, bool(record.get("resumed")), record)


def _archive(plan: StudyPlan, cell: Cell, attempt: int) -> None:
    dest = plan.root / FAILED_DIR / f"{cell.id}.attempt-{max(attempt, 1)}"
    i = 1
    while dest.exists():
        i += 1
        dest = dest.with_name(f"{cell.id}.attempt-{max(attempt, 1)}-{i}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(cell_dir(plan, cell)), dest)


def fail_unstarted(plan: StudyPlan, cell: Cell, error: str, tail: list[str]) -> dict[str, Any]:
    """Record a cell that never ran because its engine did not start."""
    root = cell_dir(plan, cell)
    root.mkdir(parents=True, exist_ok=True)
    state = read_cell_state(plan, cell) or {}
    record = {
        "id": cell.id, "status": FAILED, "spec_hash": cell.spec_hash,
        "attempt": int(state.get("attempt") or 0) + 1, "resumed": False, "started": _now(),
        "ended": _now(), "wall_s": 0.0, "levels": cell.levels, "group": cell.group,
        "error": f"engine failed to start: {error}", "log_tail": tail,
    }
    write_json(root / CELL_JSON, record)
    return record


# --------------------------------------------------------------------------- the study


@dataclass
class StudyResult:
    root: Path
    index_path: Path
    report_path: Path | None
    cells: list[dict[str, Any]]
    session: dict[str, Any]
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for c in self.cells if c["status"] == status)


def run_study(
    plan: StudyPlan,
    *,
    console: Console | None = None,
    engines: EngineSlots | None = None,
    poll_s: float = 0.5,
) -> StudyResult:
    """Run every cell of the plan that is not done yet, then write the index and report.
    One process per output folder: a second one exits 2 naming the holder's pid."""
    plan.root.mkdir(parents=True, exist_ok=True)
    with DirLock(plan.root, "study output folder"):
        return _run_study_locked(plan, console=console, engines=engines, poll_s=poll_s)


def _run_study_locked(
    plan: StudyPlan,
    *,
    console: Console | None = None,
    engines: EngineSlots | None = None,
    poll_s: float = 0.5,
) -> StudyResult:
    console = console or Console(stderr=True)
    check_settings(plan)
    plan.root.mkdir(parents=True, exist_ok=True)
    slots = engines or EngineSlots()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    session: dict[str, Any] = {
        "started": _now(), "profile": plan.profile, "limit": plan.limit, "engine_starts": 0,
        "engine_start_s": [], "cells_run": 0, "cells_resumed": 0, "cells_failed": 0,
        "cells_already_done": 0, "interrupted": False,
    }
    records: dict[str, dict[str, Any]] = {}
    todo: dict[str, list[Cell]] = {}
    for cell in plan.cells:
        state = read_cell_state(plan, cell)
        if cell.skip:
            records[cell.id] = {"id": cell.id, "status": SKIPPED, "reason": cell.skip}
        elif state and state.get("status") == DONE:
            records[cell.id] = state
            session["cells_already_done"] += 1
        else:
            records[cell.id] = state or {"id": cell.id, "status": PENDING}
            todo.setdefault(cell.group, []).append(cell)
    index_path = _write_index(plan, records, session)
    starts_before, start_s_before = slots.starts, len(slots.start_s)
    progress = StudyProgress(plan.spec.name, len(plan.cells), console,
                             done=session["cells_already_done"],
                             skipped=sum(1 for c in plan.cells if c.skip),
                             engines_left=len(todo))
    interrupted = False
    try:
        with progress:
            for group in plan.groups:
                cells = todo.get(group.id, [])
                if cells:
                    _run_group(plan, group, cells, slots, records, session, progress, console,
                               stamp, poll_s)
    except (StudyInterrupted, KeyboardInterrupt):
        interrupted = True
    finally:
        if engines is None:
            slots.close()
        session["engine_starts"] = slots.starts - starts_before
        session["engine_start_s"] = [round(s, 2) for s in slots.start_s[start_s_before:]]
        session["interrupted"] = interrupted
        session["ended"] = _now()
        _write_index(plan, records, session)
    report = None
    if not interrupted:
        report = _report(plan, records, session, console)
        _write_index(plan, records, session)
    ordered = [records[c.id] for c in plan.cells]
    return StudyResult(plan.root, index_path, report, ordered, session, interrupted)


def _run_group(plan: StudyPlan, group: EngineGroup, cells: list[Cell], slots: EngineSlots,
               records: dict[str, dict[str, Any]], session: dict[str, Any],
               progress: StudyProgress, console: Console, stamp: str, poll_s: float) -> None:
    try:
        for i, cell in enumerate(cells):
            log_dir = plan.root / ENGINES_DIR / group.id / f"{stamp}-{slots.starts + 1}"
            if not slots.is_running(group.engine):
                progress.engine_starting(group.id, group.label)
            try:
                engine, started = slots.acquire(group.engine, log_dir)
            except EngineStartFailure as err:
                progress.engine_failed(group.id, str(err))
                for rest in cells[i:]:
                    records[rest.id] = fail_unstarted(plan, rest, str(err), err.tail)
                    session["cells_failed"] += 1
                    progress.cell_finished(rest.id, FAILED, None, "engine did not start")
                _write_index(plan, records, session)
                return
            if started:
                progress.engine_started(slots.start_s[-1])
            try:
                engine, prefix_cache = clear_prefix_cache(slots, group.engine, engine, started,
                                                          log_dir)
            except EngineStartFailure as err:  # the restart after a refused reset failed
                records[cell.id] = fail_unstarted(plan, cell, str(err), err.tail)
                session["cells_failed"] += 1
                progress.cell_finished(cell.id, FAILED, None, "engine did not restart")
                _write_index(plan, records, session)
                continue
            progress.cell_started(cell.id, (cell_dir(plan, cell) / RUN_JSON).exists())
            outcome = run_cell(plan, cell, engine, console, poll_s, prefix_cache)
            records[cell.id] = outcome.record
            session["cells_resumed" if outcome.resumed else "cells_run"] += 1
            if outcome.status == FAILED:
                session["cells_failed"] += 1
                if not engine_alive(engine):
                    slots.discard(group.engine)  # the next cell starts a fresh one
            note = outcome.record.get("error", "") if outcome.status == FAILED else ""
            progress.cell_finished(cell.id, outcome.status, outcome.record.get("wall_s"),
                                   note[:200])
            _write_index(plan, records, session)
    except StudyInterrupted:
        current = progress.current
        if current is not None:
            records[current] = read_json(plan.root / current / CELL_JSON) or records[current]
        raise
    finally:
        slots.release(group.engine)


# --------------------------------------------------------------------------- index


def _cell_entry(plan: StudyPlan, cell: Cell, record: dict[str, Any]) -> dict[str, Any]:
    entry = {
        "id": cell.id, "status": record.get("status", PENDING), "group": cell.group,
        "levels": cell.levels, "settings": cell.values, "repeat": cell.repeat,
        "run_dir": cell.id if (plan.root / cell.id / RUN_JSON).exists() else None,
    }
    for key in ("reason", "error", "log_tail", "wall_s", "attempt", "resumed", "summary",
                "started", "ended", "warnings", "prefix_cache"):
        if record.get(key) not in (None, [], ""):
            entry[key] = record[key]
    if cell.skip and "reason" not in entry:
        entry["reason"] = cell.skip
    return entry


def _write_index(plan: StudyPlan, records: dict[str, dict[str, Any]],
                 session: dict[str, Any]) -> Path:
    path = plan.root / STUDY_JSON
    old = read_json(path) or {}
    sessions = [s for s in old.get("sessions", []) if s.get("started") != session["started"]]
    index: dict[str, Any] = {
        "name": plan.spec.name,
        "source": plan.source,
        "profile": plan.profile,
        "reasonperf_version": __version__,
        "created": old.get("created") or _now(),
        "updated": _now(),
        "description": plan.spec.description,
        "reported": plan.spec.reported,
        "spec": plan.spec.model_dump(mode="json", exclude={"profiles"}),
        "excluded_cells": plan.excluded,
        "counts": {},
        "cells": [_cell_entry(plan, c, records.get(c.id, {})) for c in plan.cells],
        "groups": [{"id": g.id, "label": g.label, "engine": g.engine.model_dump(mode="json"),
                    "cells": [c.id for c in g.cells]} for g in plan.groups],
        "sessions": [*sessions, session],
        "report": old.get("report"),
    }
    counts: dict[str, int] = {}
    for c in index["cells"]:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    index["counts"] = counts
    if "report" in session:
        index["report"] = session["report"]
    write_json(path, index)
    return path


# --------------------------------------------------------------------------- report


def _report(plan: StudyPlan, records: dict[str, dict[str, Any]], session: dict[str, Any],
            console: Console) -> Path | None:
    if not plan.spec.report.html:
        return None
    from reasonperf.study.report import build_results

    done = [c for c in plan.cells if records.get(c.id, {}).get("status") == DONE]
    if not done:
        session["report"] = None
        session["report_error"] = "no cell finished, so there is nothing to report"
        return None
    try:
        from reasonperf.analysis.loader import load_run
        from reasonperf.report.html import render_html

        runs = [load_run(cell_dir(plan, c)) for c in done]
        results = build_results(plan, records, done, runs)
        out = render_html(runs, results, plan.root / REPORT_HTML)
    except Exception as err:  # noqa: BLE001 - the measurements are kept even if the report fails
        session["report"] = None
        session["report_error"] = one_line([f"{type(err).__name__}: {err}"])
        console.print(f"[red]the study report failed: {session['report_error']}[/]")
        return None
    session["report"] = REPORT_HTML
    return out
