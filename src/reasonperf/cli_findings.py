"""`reasonperf findings PATH...`: the study's findings against stored runs, in the terminal.

A PATH is a run directory, a study output folder (its finished cells, with the study's
arm comparisons), or any folder holding run directories below it.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table as RichTable

from reasonperf.analysis.base import AnalysisResult, RunData
from reasonperf.errors import UsageError

STUDY_JSON = "study.json"
RUN_JSON = "run.json"


def _study_runs(folder: Path) -> tuple[list[RunData], list[AnalysisResult]]:
    """The finished cells of a study folder and its arm comparisons (re-planned from the
    study's spec when that file is still there; without it, no arms)."""
    from reasonperf.analysis.loader import load_run
    from reasonperf.study.expand import plan_study
    from reasonperf.study.report import arm_comparisons
    from reasonperf.study.runner import read_json

    index = read_json(folder / STUDY_JSON) or {}
    done_ids = [c["id"] for c in index.get("cells", []) if c.get("status") == "ok"
                and (folder / c["id"] / RUN_JSON).exists()]
    try:
        plan = plan_study(index["source"], profile=index.get("profile"), out=folder)
    except (KeyError, UsageError, OSError):
        return [load_run(folder / cid) for cid in done_ids], []
    done = [c for c in plan.cells if c.id in done_ids]
    runs = [load_run(folder / c.id) for c in done]
    return runs, arm_comparisons(plan, done, runs)


def collect(paths: list[Path]) -> tuple[list[RunData], list[AnalysisResult]]:
    from reasonperf.analysis.loader import load_run

    runs: list[RunData] = []
    arms: list[AnalysisResult] = []
    for path in paths:
        if (path / STUDY_JSON).exists():
            more, more_arms = _study_runs(path)
            runs += more
            arms += more_arms
        elif (path / RUN_JSON).exists():
            runs.append(load_run(path))
        elif path.is_dir():
            found = sorted(p.parent for p in path.rglob(RUN_JSON))
            runs += [load_run(p) for p in found]
        else:
            raise UsageError(f"{path}: not a run directory, a study folder or a folder of runs "
                             "(give the path of a run or of studies-out/<study>)")
    if not runs:
        raise UsageError("no finished run found under the given paths: run one first "
                         "(reasonperf run ... or make run)")
    return runs, arms


def findings(
    paths: list[Path] = typer.Argument(..., help="Run directories, study folders or folders of runs."),
    as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON."),
) -> None:
    """The study's findings (KV usage, stragglers, difficulty, domain, budget, arms):
    what the study reported, what these runs measured, and a verdict."""
    from reasonperf.analysis.findings import findings_rows, split_runs

    runs, arms = collect(paths)
    rows = findings_rows(runs, arms)
    if as_json:
        print(json.dumps([r.__dict__ for r in rows], indent=2, default=str))
        return
    rllm, llm = split_runs(runs)
    table = RichTable(title=f"Findings: {len(rllm)} RLLM run(s), {len(llm)} LLM run(s)",
                      show_lines=True)
    for col in ("finding", "the study reported", "measured here", "verdict", "why"):
        table.add_column(col, overflow="fold")
    style = {"holds": "green", "does not hold": "red"}
    for r in rows:
        v = f"[{style[r.verdict]}]{r.verdict}[/]" if r.verdict in style else r.verdict
        table.add_row(r.finding, r.reported, r.measured or "-", v, r.why)
    Console().print(table)
