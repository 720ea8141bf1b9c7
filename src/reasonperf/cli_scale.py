"""CLI commands of the scale-out work: ``selfcheck`` (and ``merge``)."""

from __future__ import annotations

import json

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


def register(app: typer.Typer, guard: object) -> None:
    app.command("selfcheck")(guard(selfcheck))  # type: ignore[operator]
