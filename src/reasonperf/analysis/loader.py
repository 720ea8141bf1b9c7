"""Load stored runs for analysis (the analyses never talk to an engine)."""

from __future__ import annotations

from pathlib import Path

from reasonperf.analysis.base import RunData
from reasonperf.store import RUN_JSON, RunStore


def load_run(run_dir: str | Path) -> RunData:
    store = RunStore.open(run_dir)
    return RunData(
        run_dir=str(store.dir),
        info=store.read_json(RUN_JSON) or {},
        requests=store.table("requests"),
        chunks=store.table("chunks"),
        timeline=store.table("timeline"),
        summary=store.read_json("summary.json"),
    )
