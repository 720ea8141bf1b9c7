"""Write a simulation as a run directory in the measured format.

run.json carries ``"simulated": true`` and a ``simulation`` section; requests.parquet has
the simulated timings (token counts as replayed or drawn, ``token_count_source`` =
"simulated"); chunks.parquet has one chunk per phase edge (first token, first visible
token, end) so the per-phase decode speeds are computed as for a measured run;
timeline.parquet has running, waiting, KV usage and the preemption counter under the
sampler's metric names. summary.json comes from the same summary code as a measured run.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from reasonperf.records import ChunkEvent, RequestRecord, TimelineSample
from reasonperf.sim.model import SimResult
from reasonperf.sim.workload import KEEP, Workload
from reasonperf.store import RUN_JSON, RunStore
from reasonperf.summary_io import write_summary
from reasonperf.telemetry import names


def _t(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _chunks(rid: str, first: float | None, vis: float | None, done: float | None,
            reasoning: int, answer: int) -> list[ChunkEvent]:
    out: list[ChunkEvent] = []
    if first is None or done is None:
        return out
    if reasoning > 0:
        out.append(ChunkEvent(rid, first, "reasoning", 1, 0))
        if reasoning > 1:
            out.append(ChunkEvent(rid, vis if vis is not None else done, "reasoning",
                                  reasoning - 1, 0))
    if answer > 0:
        start = vis if vis is not None else first
        out.append(ChunkEvent(rid, start, "answer", 1, 0))
        if answer > 1:
            out.append(ChunkEvent(rid, done, "answer", answer - 1, 0))
    return sorted(out, key=lambda c: c.t_s)


def write_sim_run(out_dir: Path, name: str, workload: Workload, result: SimResult,
                  info: dict[str, Any]) -> RunStore:
    """Create ``out_dir`` (must not hold a run) and write the simulated run into it."""
    store = RunStore.create(out_dir.parent, name, exact_dir=out_dir)
    run_id = out_dir.name
    base = {
        "run_id": run_id,
        "name": name,
        "simulated": True,
        "clock": {"wall_time_unix": time.time(), "perf_counter_ns": 0},
        "num_requests": len(workload.requests),
        "warnings": [],
    }
    store.write_json(RUN_JSON, {**base, **info})
    for i, (req, row) in enumerate(zip(workload.requests, workload.rows, strict=True)):
        kept = {k: row.get(k) for k in KEEP if k in row}
        rid = f"s{i:06d}"
        first, vis, done = (_t(result.first_token_s[i]), _t(result.first_visible_s[i]),
                            _t(result.done_s[i]))
        reasoning = req.reasoning_tokens
        answer = req.output_tokens - reasoning
        rec = RequestRecord(
            request_id=rid,
            run_id=run_id,
            dataset=kept.get("dataset") or "simulated",
            problem_id=str(row.get("problem_id") or rid),
            sample_index=int(row.get("sample_index") or 0),
            difficulty=kept.get("difficulty"),
            domain=kept.get("domain"),
            scheduled_s=req.arrival_s,
            sent_s=req.arrival_s,
            first_token_s=first,
            first_visible_s=vis,
            done_s=done,
            prompt_tokens=req.prompt_tokens,
            completion_tokens=req.output_tokens,
            reasoning_tokens=reasoning,
            answer_tokens=answer,
            token_count_source="simulated",
            finish_reason=kept.get("finish_reason"),
            max_tokens=kept.get("max_tokens"),
            gold=kept.get("gold"),
            grader=kept.get("grader"),
            extracted_answer=kept.get("extracted_answer"),
            extraction_method=kept.get("extraction_method"),
            correct=kept.get("correct"),
            truncated=kept.get("truncated"),
        )
        store.append_request(rec, _chunks(rid, first, vis, done, reasoning, answer))
    samples: list[TimelineSample] = []
    for t, running, waiting, kv, pre in result.samples:
        samples += [
            TimelineSample(t, names.SOURCE_ENGINE, names.REQUESTS_RUNNING, float(running)),
            TimelineSample(t, names.SOURCE_ENGINE, names.REQUESTS_WAITING, float(waiting)),
            TimelineSample(t, names.SOURCE_ENGINE, names.KV_CACHE_USAGE, float(kv)),
            TimelineSample(t, names.SOURCE_ENGINE, names.PREEMPTIONS_TOTAL, float(pre)),
        ]
    store.append_timeline(samples)
    store.fold()
    write_summary(store)
    return store
