"""``reasonperf workload fit``: fit the length distribution of stored runs (for replay)."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from reasonperf.errors import UsageError

workload_app = typer.Typer(no_args_is_help=True, help="Fit and replay workload shapes.")


def fit(
    run_dirs: list[Path] = typer.Argument(..., help="Stored run directories to fit."),
    output: Path = typer.Option(Path("lengths.json"), "-o", "--output", help="Where the fit goes."),
    tail_from: float = typer.Option(0.9, help="Quantile above which the log-normal tail takes over."),
    seed: int = typer.Option(0, help="Seed of the subsample of a large group."),
) -> None:
    """Fit (prompt, reasoning, answer) token lengths per dataset and difficulty; replay
    them with --workload replay:FILE."""
    from reasonperf.analysis.loader import load_run
    from reasonperf.workload.lengths import PARTS, fit_lengths

    for d in run_dirs:
        if not (d / "run.json").is_file():
            raise UsageError(f"{d} is not a run directory (no run.json); pass run directories")
    data = fit_lengths([load_run(d) for d in run_dirs], tail_from=tail_from, seed=seed)
    output.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))
    for g in data["groups"]:
        fits = ", ".join(f"{p.removesuffix('_tokens')} KS {g['marginals'][p]['lognormal']['ks']:.2f}"
                         if g["marginals"][p]["lognormal"]["ks"] is not None
                         else f"{p.removesuffix('_tokens')} KS n/a" for p in PARTS)
        print(f"{g['dataset']} {g['difficulty'] or '-'}: {g['n']} requests; log-normal {fits}")
    print(f"lengths: {output} (replay with --workload replay:{output})")
