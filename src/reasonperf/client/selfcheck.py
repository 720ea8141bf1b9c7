"""``reasonperf selfcheck``: the request and chunk rates one client worker sustains here.

A built-in fake endpoint (client/fake_endpoint.py, its own process) answers at once, so
only the client limits the rates. The check offers a constant open-loop rate in steps,
raising it by ``factor`` each step, and stops at the first step where the dispatch lag
(sent_s - scheduled_s, as in every run) has p99 above ``lag_limit_s``, the achieved send
rate falls below 95 % of the offered rate, or a request fails; also when the time budget
is spent. A failed step is run once more before it counts (one late wake-up of a shared
host is a p99 over a few hundred sends). The sustainable rate is the last step that passed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from reasonperf.client.fake_endpoint import MODEL, FakeEndpoint
from reasonperf.client.headroom import HeadroomMonitor
from reasonperf.client.openai import EndpointConfig, make_session, send_request
from reasonperf.client.runner import RunClock, event_loop_factory, run_load
from reasonperf.records import ChunkEvent, RequestPlan, RequestRecord
from reasonperf.workload.arrivals import make_arrival

ACHIEVED_MIN = 0.95


@dataclass
class Step:
    rate: float
    requests: int
    achieved_rate: float
    chunk_rate: float
    lag_p50_ms: float
    lag_p99_ms: float
    errors: int
    cpu_share: float | None
    passed: bool


def _plan(i: int) -> RequestPlan:
    return RequestPlan(request_id=f"s{i:06d}", index=i, dataset="selfcheck", problem_id=str(i),
                       sample_index=0, messages=[{"role": "user", "content": "hi"}])


async def _step(url: str, rate: float, step_s: float, lag_limit_s: float) -> Step:
    n = max(10, int(rate * step_s))
    arrival = make_arrival("constant", n, rate=rate)
    cfg = EndpointConfig(base_url=url, model=MODEL)
    clock = RunClock.start()
    records: list[RequestRecord] = []
    n_chunks = 0

    def on_done(record: RequestRecord, chunks: list[ChunkEvent]) -> None:
        nonlocal n_chunks
        records.append(record)
        n_chunks += len(chunks)

    async with make_session(None) as session:
        async def send(plan: RequestPlan) -> tuple[RequestRecord, list[ChunkEvent]]:
            return await send_request(session, cfg, plan, clock, "selfcheck")

        start = clock() + 0.05
        plans = [_plan(i) for i in range(n)]
        assert arrival.offsets is not None
        for p, off in zip(plans, arrival.offsets, strict=True):
            p.scheduled_s = start + off
        stop = asyncio.Event()
        monitor = HeadroomMonitor(cpu_every_s=0.5)
        task = asyncio.create_task(monitor.run(stop))
        try:
            await run_load(plans, arrival, send, on_done, clock)
        finally:
            stop.set()
            await task
    sent = np.array([r.sent_s for r in records if r.sent_s is not None])
    sched = np.array([r.scheduled_s for r in records if r.sent_s is not None])
    done = np.array([r.done_s for r in records if r.done_s is not None])
    lag_ms = (sent - sched) * 1e3 if len(sent) else np.array([np.inf])
    span = float(sent.max() - sent.min()) if len(sent) > 1 else 0.0
    achieved = (len(sent) - 1) / span if span > 0 else 0.0
    window = float(done.max() - sent.min()) if len(done) and len(sent) else 0.0
    errors = sum(1 for r in records if r.status != "ok")
    p99 = float(np.percentile(lag_ms, 99))
    passed = p99 <= lag_limit_s * 1e3 and achieved >= ACHIEVED_MIN * rate and errors == 0
    return Step(rate, n, achieved, n_chunks / window if window > 0 else 0.0,
                float(np.percentile(lag_ms, 50)), p99, errors,
                monitor.summary()["cpu_share"]["overall"], passed)


async def _ramp(url: str, start_rate: float, factor: float, step_s: float, budget_s: float,
                lag_limit_s: float) -> list[Step]:
    steps: list[Step] = []
    deadline = time.monotonic() + budget_s
    rate = start_rate
    while time.monotonic() + step_s < deadline:
        step = await _step(url, rate, step_s, lag_limit_s)
        if not step.passed and time.monotonic() + step_s < deadline:
            # one retry: a p99 over a few hundred sends is one late wake-up on a shared host
            step = await _step(url, rate, step_s, lag_limit_s)
        steps.append(step)
        if not step.passed:
            break
        rate = float(f"{rate * factor:.2g}")  # readable steps: 50, 75, 110, 170, ...
    return steps


def selfcheck(*, budget_s: float = 30.0, step_s: float = 2.0, start_rate: float = 50.0,
              factor: float = 1.5, chunks: int = 32, lag_limit_s: float = 0.001) -> dict[str, Any]:
    """Run the ramp against a fresh fake endpoint; return every step and the verdict."""
    with FakeEndpoint(chunks=chunks) as endpoint, asyncio.Runner(
        loop_factory=event_loop_factory()
    ) as runner:
        steps = runner.run(_ramp(endpoint.base_url, start_rate, factor, step_s, budget_s,
                                 lag_limit_s))
    passed = [s for s in steps if s.passed]
    best = passed[-1] if passed else None
    return {
        "chunks_per_request": chunks,
        "lag_limit_ms": lag_limit_s * 1e3,
        "steps": [s.__dict__ for s in steps],
        "sustainable_request_rate": best.rate if best else None,
        "sustainable_chunk_rate": round(best.chunk_rate) if best else None,
        "limited_by": ("time budget" if steps and steps[-1].passed else
                       _why(steps[-1], lag_limit_s) if steps else "time budget"),
    }


def _why(step: Step, lag_limit_s: float) -> str:
    if step.errors:
        return f"{step.errors} failed requests at {step.rate:g} req/s"
    if step.lag_p99_ms > lag_limit_s * 1e3:
        return f"dispatch lag p99 {step.lag_p99_ms:.2f} ms at {step.rate:g} req/s"
    return f"achieved {step.achieved_rate:.0f} of {step.rate:g} req/s"
