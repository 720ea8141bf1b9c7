"""``reasonperf run --workers N``: N shard processes on this host (multiprocessing spawn).

The coordinator creates the run directory, starts the shards (each writes its own
directory under ``shards/``), waits until every shard is ready to send (endpoint probed,
session open), measures each shard's clock offset (ping-pong over its pipe), broadcasts
T0 = now + a short lead, and after the shards end measures the offsets again and merges
their records into the run directory.
"""

from __future__ import annotations

import multiprocessing as mp
import shutil
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from rich.console import Console

from reasonperf.config import RunSpec, load_run_spec
from reasonperf.errors import UsageError
from reasonperf.scaleout.clock import answer_pings, measure_offset, skew_for
from reasonperf.scaleout.merge import merge_shards
from reasonperf.scaleout.shard import READY, START, ShardContext
from reasonperf.store import RunStore

READY_TIMEOUT_S = 600.0  # a shard loads its workload and probes the endpoint first
LEAD_S = 0.5  # T0 = now + LEAD_S once every shard is ready
DONE = "done"
BYE = "bye"


def _shard_main(spec_data: dict[str, Any], index: int, count: int, run_id: str,
                out_dir: str, conn: Connection) -> None:
    """A shard process: run its slice, report, answer the end-of-run pings."""
    from reasonperf.run import execute_run

    shard = ShardContext(index, count, run_id, conn=conn, skew_s=skew_for(index))
    try:
        spec = load_run_spec(spec_data, source="coordinator")
        res = execute_run(spec, out_dir=out_dir, shard=shard,
                          console=Console(stderr=True, quiet=True))
        conn.send((DONE, {"failure": res.failure, "interrupted": res.interrupted}))
    except BaseException as err:  # reported to the coordinator as one line
        what = str(err) if isinstance(err, UsageError) else f"{type(err).__name__}: {err}"
        conn.send((DONE, {"failure": f"shard {index}: {what}",
                          "interrupted": isinstance(err, KeyboardInterrupt)}))
        return
    answer_pings(conn, shard.wall)  # until BYE


def _recv(conn: Connection, proc: BaseProcess, deadline: float, what: str) -> Any:
    while not conn.poll(0.05):
        if not proc.is_alive():
            raise UsageError(f"a shard process exited (status {proc.exitcode}) before {what}")
        if time.monotonic() > deadline:
            raise UsageError(f"a shard did not reach {what} within {READY_TIMEOUT_S:.0f} s")
    return conn.recv()


def run_local(spec: RunSpec, workers: int, console: Console) -> tuple[Path, dict[str, Any], list[str]]:
    """Run ``spec`` over ``workers`` local shard processes; return the run directory,
    its summary and the failure lines (empty when every shard and the merge succeeded)."""
    if workers < 2:
        raise UsageError(f"--workers must be >= 2 for a sharded run, got {workers}")
    if spec.engine.kind != "external":
        raise UsageError("--workers needs an endpoint that is already serving (--endpoint URL); "
                         "start the engine first, then run the shards against it")
    store = RunStore.create(spec.out, spec.name)
    run_id = store.dir.name
    ctx = mp.get_context("spawn")
    procs: list[tuple[BaseProcess, Connection]] = []
    offsets: dict[int, dict[str, Any]] = {}
    failures: list[str] = []
    merged = False
    try:
        for i in range(workers):
            ours, theirs = ctx.Pipe()
            out_dir = store.dir / "shards" / f"shard-{i}"
            proc: BaseProcess = ctx.Process(target=_shard_main, name=f"reasonperf-shard-{i}",
                               args=(spec.model_dump(mode="json"), i, workers, run_id,
                                     str(out_dir), theirs))
            proc.start()
            procs.append((proc, ours))
        deadline = time.monotonic() + READY_TIMEOUT_S
        for proc, conn in procs:
            msg = _recv(conn, proc, deadline, "ready")
            if msg != READY:  # it failed while setting up
                raise UsageError(msg[1]["failure"] if isinstance(msg, tuple) else str(msg))
        for i, (_proc, conn) in enumerate(procs):
            offsets[i] = {"offset_start": measure_offset(conn)}
        t0 = time.time() + LEAD_S
        for i, (_proc, conn) in enumerate(procs):
            conn.send((START, t0, offsets[i]["offset_start"]))
        console.print(f"{workers} shards start at T0 = {t0:.3f}", markup=False)
        for i, (proc, conn) in enumerate(procs):
            _kind, result = _recv(conn, proc, float("inf"), "the end of its run")
            if result["failure"]:
                failures.append(f"shard {i}: {result['failure']}")
            offsets[i]["offset_end"] = measure_offset(conn)
            conn.send(BYE)
        merged = True
    finally:
        for proc, conn in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
            conn.close()
        if not merged and not list(store.dir.glob("shards/*/run.json")):
            shutil.rmtree(store.dir / "shards", ignore_errors=True)
            store.remove_if_unused()  # failed before any shard wrote a run
    shard_dirs = sorted((store.dir / "shards").iterdir())
    summary, problems = merge_shards(shard_dirs, store, offsets)
    store.unlock()
    return store.dir, summary, failures + problems
