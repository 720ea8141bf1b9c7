"""`reasonperf doctor` and `reasonperf engine check` (registered on the app in cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

STYLE = {"ok": "green", "info": "cyan", "warn": "yellow"}


def doctor(
    concurrency: int = typer.Option(256, help="Requests you plan to keep in flight (checks the open-file limit)."),
    cpuinfo: Path = typer.Option(Path("/proc/cpuinfo"), help="CPU description to read the flags from."),
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """What will limit your measurement on this host: CPU (bf16, dtype), cores shared with a
    launched engine, GPUs and NVML, open files, event loop, installed engines."""
    from reasonperf.hostcheck.doctor import DoctorInput, run_checks

    checks = run_checks(DoctorInput(concurrency=concurrency, cpuinfo=cpuinfo))
    if as_json:
        print(json.dumps([c.__dict__ for c in checks], indent=2))
        return
    table = Table(title="reasonperf doctor", show_lines=False)
    for col in ("check", "status", "found", "what to do"):
        table.add_column(col, overflow="fold")
    for c in checks:
        table.add_row(c.name, f"[{STYLE[c.status]}]{c.status}[/]", c.found, c.fix or "-")
    Console().print(table)
    warns = sum(c.status == "warn" for c in checks)
    Console().print(f"{warns} warning(s)" if warns else "nothing limits the measurement here")


def engine_check(
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Which engines are importable or on PATH, their versions and reasoning parsers."""
    from reasonperf.hostcheck.engines import installed_engines

    engines = installed_engines()
    if as_json:
        print(json.dumps([e.__dict__ for e in engines], indent=2))
        return
    console = Console()
    for e in engines:
        if not e.installed:
            console.print(f"[bold]{e.name}[/]: not installed. {e.note or ''}")
            continue
        console.print(f"[bold]{e.name}[/]: {e.distribution} {e.version} "
                      f"({e.build or 'build unknown'}), console script: {e.on_path or 'not on PATH'}")
        console.print(f"  reasoning parsers: {', '.join(e.reasoning_parsers) or 'none found'}")
        if e.note:
            console.print(f"  note: {e.note}")
