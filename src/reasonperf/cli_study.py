"""`reasonperf study SPEC.yaml`: the study command (registered on the app in cli.py).

Bad input (an invalid spec, an unknown profile) is one line ``error: ...`` and exit
code 2. Exit codes otherwise: 0 when every cell that could run finished, 1 when some
cell failed (its error is in the index), 130 when interrupted (rerun to resume).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from reasonperf.errors import UsageError

if TYPE_CHECKING:
    from reasonperf.study.expand import StudyPlan

EXIT_USAGE, EXIT_FAILED_CELLS, EXIT_INTERRUPTED = 2, 1, 130


def study(
    spec: Path = typer.Argument(..., help="Study spec (YAML), e.g. studies/quickstart.yaml."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Expand and check the cells; run nothing."),
    profile: str | None = typer.Option(None, "--profile", help="A profile of the spec, e.g. cpu (small, CPU-only)."),
    limit: int | None = typer.Option(None, "--limit", help="At most N problems per cell (a quick pass)."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default studies-out/<name>)."),
) -> None:
    """Run a study: a matrix of runs over engines and settings, resumable, with a report."""
    try:
        code = _study(spec, dry_run, profile, limit, out)
    except UsageError as err:
        from reasonperf.redact import redact_text

        print(f"error: {redact_text(' '.join(str(err).split()))}", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE) from None
    if code:
        raise typer.Exit(code)


def _study(spec: Path, dry_run: bool, profile: str | None, limit: int | None,
           out: Path | None) -> int:
    from reasonperf.study.expand import plan_study
    from reasonperf.study.runner import run_study

    plan = plan_study(spec, profile=profile, limit=limit, out=out)
    if dry_run:
        _print_plan(plan)
        return 0
    result = run_study(plan, console=Console(stderr=True))
    console = Console()
    ok, failed, skipped = (result.count(s) for s in ("ok", "failed", "skipped"))
    console.print(f"study {plan.spec.name}: {ok} ok, {failed} failed, {skipped} skipped "
                  f"of {len(result.cells)} cells; engine starts this session: "
                  f"{result.session['engine_starts']}")
    console.print(f"index: {result.index_path}")
    if result.interrupted:
        again = ["reasonperf", "study", str(spec)]
        again += ["--profile", profile] if profile else []
        again += ["--limit", str(limit)] if limit else []
        again += ["--out", str(out)] if out else []
        print(f"interrupted: finished cells are kept; resume with: {shlex.join(again)}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    if result.report_path is not None:
        console.print(f"report: {result.report_path}")
    elif result.session.get("report_error"):
        console.print(f"no report: {result.session['report_error']}")
    return EXIT_FAILED_CELLS if failed else 0


def _print_plan(plan: StudyPlan) -> None:
    from reasonperf.study.runner import DONE, FAILED, read_cell_state

    console = Console()
    header = f"study {plan.spec.name} from {plan.source} -> {plan.root}"
    console.print(header)
    if plan.spec.description.strip():
        console.print(plan.spec.description.strip(), style="dim")
    table = Table("#", "cell", "engine", "action")
    table.columns[1].overflow = "fold"
    counts = {"run": 0, "resume": 0, "done": 0, "skip": 0}
    for cell in plan.cells:
        state = read_cell_state(plan, cell) or {}
        status = state.get("status")
        if cell.skip:
            action, key = f"skip: {cell.skip}", "skip"
        elif status == DONE:
            action, key = "done", "done"
        elif status == FAILED:
            action, key = "run again (failed before)", "run"
        elif (plan.root / cell.id / "run.json").exists():
            action, key = "resume", "resume"
        else:
            action, key = "run", "run"
        counts[key] += 1
        table.add_row(str(cell.index + 1), cell.id, cell.group, action)
    console.print(table)
    groups = [g for g in plan.groups if any(not c.skip for c in g.cells)]
    for g in plan.groups:
        console.print(f"{g.id}: {g.label} ({len(g.cells)} cells)")
    console.print(
        f"{len(plan.cells)} cells: {counts['run']} to run, {counts['resume']} to resume, "
        f"{counts['done']} done, {counts['skip']} skipped; {plan.excluded} excluded by rules; "
        f"{len(groups)} engine groups (one engine start each)"
    )
    if plan.spec.profiles and plan.profile is None:
        console.print(f"profiles: {', '.join(plan.spec.profiles)} (--profile NAME)")
