"""The scheduler: sends each plan when its arrival process says, and hands every finished
request to a sink the moment it ends.

Timing choices (why it is done this way):
- Open-loop arrivals (poisson, gamma, constant, trace) carry *absolute* offsets sampled
  before the run. The dispatcher sleeps until each absolute time on the run clock, so an
  oversleep never accumulates into drift the way relative ``sleep(gap)`` calls do.
- A concurrency cap on an open-loop run makes requests wait for a slot. That wait is
  measured (sent_s - scheduled_s = client_queue_s) and reported, never hidden.
- ``batch`` is the study's mode: B requests at once, the next batch only when the slowest
  of the current batch has ended, so stragglers show up as idle engine capacity.
- ``concurrency`` is a closed loop: C workers, each sending its next request the moment
  its previous one ends (scheduled_s = that moment).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from reasonperf.records import ChunkEvent, RequestPlan, RequestRecord
from reasonperf.workload.arrivals import Arrival

SendFn = Callable[[RequestPlan], Awaitable[tuple[RequestRecord, list[ChunkEvent]]]]
DoneFn = Callable[[RequestRecord, list[ChunkEvent]], None]


@dataclass
class RunClock:
    """Seconds since the run's start on the monotonic clock.

    ``offset_s`` lets a resumed run continue the original run's time axis (computed from
    the wall-clock anchor in run.json), so one run has one timeline.
    """

    t0_ns: int
    offset_s: float = 0.0

    @classmethod
    def start(cls, offset_s: float = 0.0) -> RunClock:
        return cls(time.perf_counter_ns(), offset_s)

    def __call__(self) -> float:
        return (time.perf_counter_ns() - self.t0_ns) / 1e9 + self.offset_s


SPIN_S = 0.0015


async def sleep_until(clock: Callable[[], float], t: float) -> None:
    """Wake at ``t`` on the run clock.

    Event-loop timers have millisecond granularity (epoll rounds up), so a plain sleep
    wakes 0-1 ms late. We sleep until ``SPIN_S`` before the deadline, then yield to the
    loop (``sleep(0)``: other requests keep streaming) until the deadline passes.
    """
    delay = t - clock()
    if delay > SPIN_S:
        await asyncio.sleep(delay - SPIN_S)
    while clock() < t:
        await asyncio.sleep(0)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed: its I/O and timers wake the dispatcher and the stream
    readers with less jitter than the default selector loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def run_load(
    plans: Sequence[RequestPlan],
    arrival: Arrival,
    send: SendFn,
    on_done: DoneFn,
    clock: Callable[[], float],
    on_sent: Callable[[RequestPlan], None] | None = None,
) -> None:
    """Send every plan according to ``arrival``; return when all have ended.

    On cancellation (Ctrl-C) the in-flight requests are cancelled and awaited; they write
    no record, so ``--resume`` sends them again. Every request that ended before is
    already with ``on_done``.
    """

    async def one(plan: RequestPlan, sem: asyncio.Semaphore | None) -> None:
        if sem is not None:
            async with sem:
                await _send(plan)
        else:
            await _send(plan)

    async def _send(plan: RequestPlan) -> None:
        if on_sent is not None:
            on_sent(plan)
        record, chunks = await send(plan)
        record.scheduled_s = plan.scheduled_s
        on_done(record, chunks)

    tasks: set[asyncio.Task[None]] = set()
    try:
        if arrival.mode == "open":
            sem = asyncio.Semaphore(arrival.concurrency) if arrival.concurrency else None
            for plan in plans:
                assert plan.scheduled_s is not None, "open-loop plans carry their offsets"
                await sleep_until(clock, plan.scheduled_s)
                task = asyncio.create_task(one(plan, sem))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await _gather(tasks)
        elif arrival.mode == "batch":
            size = arrival.batch_size or len(plans) or 1
            for start in range(0, len(plans), size):
                batch = plans[start : start + size]
                now = clock()
                for plan in batch:
                    plan.scheduled_s = now
                tasks.update(asyncio.create_task(one(p, None)) for p in batch)
                await _gather(tasks)
                tasks.clear()
        elif arrival.mode == "closed":
            queue = list(reversed(plans))

            async def worker() -> None:
                while queue:
                    plan = queue.pop()
                    plan.scheduled_s = clock()
                    await _send(plan)

            n = min(arrival.concurrency or 1, len(plans))
            tasks.update(asyncio.create_task(worker()) for _ in range(n))
            await _gather(tasks)
        else:  # pragma: no cover - arrivals validate their mode
            raise ValueError(f"unknown arrival mode {arrival.mode!r}")
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _gather(tasks: set[asyncio.Task[None]]) -> None:
    """Wait for all tasks; the first unexpected exception propagates (client errors never
    raise: they become error records)."""
    if tasks:
        await asyncio.gather(*list(tasks))
