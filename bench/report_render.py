"""Report rendering benchmark: how long `reasonperf report` takes on a big run.

Builds a synthetic open-loop run of 100,000 requests (8 chunk events each, an engine
timeline sampled every 0.5 s over the whole run: about 125,000 timeline rows), writes it
as a run directory, then times each stage of the report on it and on a 1,000-request
baseline, side by side with the ratio. Target (issue 5): the whole report of the
100,000-row run in under 30 s. Not a test: nothing is asserted.

    .venv/bin/python bench/report_render.py [--rows 100000] [--baseline 1000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 30.0


def _write_run(run_dir: Path, run: Any) -> None:
    import pyarrow.parquet as pq

    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps(run.info))
    for name in ("requests", "chunks", "timeline"):
        pq.write_table(getattr(run, name), run_dir / f"{name}.parquet")


def _timed(times: dict[str, float], stage: str, fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    out = fn()
    times[stage] = time.perf_counter() - t0
    return out


def measure(rows: int, work: Path) -> tuple[dict[str, float], dict[str, Any]]:
    """Seconds per stage for a run of ``rows`` requests, plus a few sizes."""
    sys.path.insert(0, str(ROOT))  # the synthetic-run generator lives with the report tests
    from reasonperf.analysis.loader import load_run
    from reasonperf.report import html, plots
    from tests.test_report import make_run

    try:
        from reasonperf.analysis.registry_all import run_analyses
    except ImportError:  # the analyses are not there yet: report without them
        def run_analyses(runs: list[Any], names: list[str] | None = None) -> list[Any]:
            return []

    t: dict[str, float] = {}
    run = _timed(t, "generate (not part of the report)", lambda: make_run(
        rows, name=f"bench-{rows}", arrival="poisson", rate=8.0, chunks_per_request=8, seed=1))
    run_dir = work / f"run-{rows}"
    _write_run(run_dir, run)
    loaded = _timed(t, "load run (parquet)", lambda: load_run(run_dir))
    _timed(t, "summary", lambda: html.run_summary(loaded))
    results = _timed(t, "analyses", lambda: run_analyses([loaded]))
    _timed(t, "latency CDFs", lambda: [plots.draw_figure(f, "c") for f in plots.latency_cdf_figures([loaded])])
    _timed(t, "KV/requests timeline", lambda: plots.timeline_svg(loaded, "t"))
    _timed(t, "Gantt (capped)", lambda: plots.draw_figure(plots.gantt_figure(loaded), "g", 9.6))
    _timed(t, "analysis figures + tables", lambda: html.analysis_views(results))
    out = work / f"report-{rows}.html"
    t0 = time.perf_counter()
    html.render_html([load_run(run_dir)], run_analyses([load_run(run_dir)]), out)
    t["TOTAL: load + analyses + render_html"] = time.perf_counter() - t0
    sizes = {"requests": loaded.requests.num_rows, "chunks": loaded.chunks.num_rows,
             "timeline": loaded.timeline.num_rows, "analyses": len(results),
             "html_bytes": out.stat().st_size}
    return t, sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--baseline", type=int, default=1_000)
    ap.add_argument("--keep", type=Path, help="write the runs and reports here instead of a temp dir")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        base, base_sizes = measure(args.baseline, work)
        big, big_sizes = measure(args.rows, work)
    w = max(len(k) for k in big) + 2
    print(f"{'stage':<{w}}{f'{args.baseline:,} rows':>14}{f'{args.rows:,} rows':>16}{'ratio':>9}")
    for stage in big:
        ratio = big[stage] / base[stage] if base[stage] > 0 else float("nan")
        print(f"{stage:<{w}}{base[stage]:>12.3f} s{big[stage]:>14.3f} s{ratio:>8.1f}x")
    for key in big_sizes:
        print(f"{key:<{w}}{base_sizes[key]:>14,}{big_sizes[key]:>16,}")
    total = big["TOTAL: load + analyses + render_html"]
    verdict = "meets" if total < TARGET_S else "MISSES"
    print(f"\n{args.rows:,}-row report: {total:.1f} s ({verdict} the {TARGET_S:.0f} s target)")


if __name__ == "__main__":
    main()
