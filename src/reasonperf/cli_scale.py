"""CLI commands of the scale-out work: ``selfcheck`` (and ``merge``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table


def selfcheck(
    budget_s: float = typer.Option(30.0, "--budget", help="Seconds the ramp may take in all."),
    step_s: float = typer.Option(2.0, "--step", help="Seconds per rate step."),
    chunks: int = typer.Option(32, "--chunks", help="Streamed chunks per request."),
    lag_limit_ms: float = typer.Option(1.0, "--lag-limit-ms",
                                       help="Dispatch lag p99 a step may reach and pass."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """This host's sustainable request and chunk rate per client worker (built-in fake
    endpoint, ramped until dispatch lag p99 > --lag-limit-ms or the send rate falls
    behind)."""
    from reasonperf.client.selfcheck import selfcheck as run_selfcheck
    from reasonperf.errors import UsageError

    if budget_s <= step_s or step_s <= 0 or chunks < 1 or lag_limit_ms <= 0:
        raise UsageError("selfcheck: need --step > 0, --budget > --step, --chunks >= 1 "
                         "and --lag-limit-ms > 0")
    result = run_selfcheck(budget_s=budget_s, step_s=step_s, chunks=chunks,
                           lag_limit_s=lag_limit_ms / 1e3)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table("offered req/s", "achieved", "chunks/s", "lag p50 ms", "lag p99 ms",
                  "CPU share", "errors", "ok")
    for s in result["steps"]:
        cpu = "-" if s["cpu_share"] is None else f"{s['cpu_share']:.0%}"
        table.add_row(f"{s['rate']:g}", f"{s['achieved_rate']:.0f}", f"{s['chunk_rate']:.0f}",
                      f"{s['lag_p50_ms']:.2f}", f"{s['lag_p99_ms']:.2f}", cpu, str(s["errors"]),
                      "yes" if s["passed"] else "no")
    console = Console()
    console.print(table)
    rate, chunk_rate = result["sustainable_request_rate"], result["sustainable_chunk_rate"]
    if rate is None:
        console.print(f"sustainable per worker: below the first step ({result['limited_by']})",
                      markup=False)
    else:
        console.print(f"sustainable per worker: {rate:g} req/s, {chunk_rate:,} chunks/s "
                      f"({result['chunks_per_request']} chunks/request; next step: "
                      f"{result['limited_by']})", markup=False)




def sharded_run(spec: Any, workers: int | None, shard: str | None, t0: float | None,
                console: Console) -> Any:
    """``run --workers N`` or ``run --shard I/N --t0 EPOCH``: a RunResult, or None when
    the run is not sharded (then the caller runs it as usual)."""
    from reasonperf.errors import UsageError
    from reasonperf.run import RunResult, execute_run
    from reasonperf.scaleout.shard import ShardContext, parse_shard

    if shard is None and t0 is not None:
        raise UsageError("--t0 goes with --shard I/N (a shard started by hand)")
    if shard is not None:
        if workers not in (None, 1):
            raise UsageError("--shard runs one shard in this process; drop --workers")
        if t0 is None:
            raise UsageError("--shard needs --t0 EPOCH: the common start time (Unix seconds) "
                             "of all shards, e.g. $(( $(date +%s) + 60 ))")
        index, count = parse_shard(shard)
        run_id = f"{spec.name}-t0-{t0:.0f}"
        return execute_run(spec, console=console,
                           shard=ShardContext(index, count, run_id, t0_unix=t0))
    if workers is None or workers == 1:
        return None
    from reasonperf.scaleout.local import run_local

    run_dir, summary, failures = run_local(spec, workers, console)
    return RunResult(run_dir, summary, warnings=list(summary.get("warnings", [])),
                     failure="; ".join(failures) or None)


def merge(
    dirs: list[Path] = typer.Argument(..., help="The shard run directories of one run."),
    out: str = typer.Option("runs", help="Runs directory for the merged run."),
    name: str = typer.Option("merged", help="Merged run name (directory suffix)."),
) -> None:
    """Merge shard runs (``run --shard I/N --t0 EPOCH``) into one run directory."""
    from reasonperf.report.console import render_summary
    from reasonperf.scaleout.merge import merge_shards
    from reasonperf.store import RunStore

    for d in dirs:
        RunStore.open(d)  # a one-line error for a wrong path
    store = RunStore.create(out, name)
    try:
        summary, problems = merge_shards(dirs, store)
    finally:
        store.unlock()
    render_summary(summary, Console(), str(store.dir))
    if problems:
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        raise typer.Exit(1)


def register(app: typer.Typer, guard: Any) -> None:
    app.command("selfcheck")(guard(selfcheck))
    app.command("merge")(guard(merge))
