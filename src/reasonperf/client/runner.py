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
- Plans are consumed as an iterator, never listed, so the size of a run costs no memory.
- A ``stop`` event (set when the endpoint is dead) ends the dispatch at once, whatever the
  mode, and keeps every request that ended.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

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
    plans: Iterable[RequestPlan],
    arrival: Arrival,
    send: SendFn,
    on_done: DoneFn,
    clock: Callable[[], float],
    on_sent: Callable[[RequestPlan], None] | None = None,
    stop: asyncio.Event | None = None,
    drain_s: float = 5.0,
) -> None:
    """Send every plan according to ``arrival``; return when all have ended.

    ``plans`` is iterated once, as sending goes (it may be lazy: any size costs the
    memory of the requests in flight). When ``stop`` is set (a dead endpoint), nothing
    more is sent; requests in flight get ``drain_s`` to end and are then cancelled.

    On cancellation (Ctrl-C) the in-flight requests are cancelled and awaited; they write
    no record, so ``--resume`` sends them again. Every request that ended before is
    already with ``on_done``.
    """
    tasks: set[asyncio.Task[None]] = set()
    halt = stop if stop is not None else asyncio.Event()

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

    def spawn(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return task

    async def dispatch() -> None:
        if arrival.mode == "open":
            sem = asyncio.Semaphore(arrival.concurrency) if arrival.concurrency else None
            for plan in plans:
                assert plan.scheduled_s is not None, "open-loop plans carry their offsets"
                await sleep_until(clock, plan.scheduled_s)
                spawn(one(plan, sem))
            await _wait_all(set(tasks))
        elif arrival.mode == "batch":
            size = arrival.batch_size or 1
            source = iter(plans)
            while batch := list(itertools.islice(source, size)):
                now = clock()
                for plan in batch:
                    plan.scheduled_s = now
                await _wait_all({spawn(one(p, None)) for p in batch})
        elif arrival.mode == "closed":
            source = iter(plans)

            async def worker() -> None:
                while not halt.is_set():
                    plan = next(source, None)  # one shared iterator: each takes the next
                    if plan is None:
                        return
                    plan.scheduled_s = clock()
                    await _send(plan)

            await _wait_all({spawn(worker()) for _ in range(arrival.concurrency or 1)})
        else:  # pragma: no cover - arrivals validate their mode
            raise ValueError(f"unknown arrival mode {arrival.mode!r}")

    dispatcher = asyncio.create_task(dispatch())
    try:
        watch = asyncio.create_task(halt.wait())
        try:
            await asyncio.wait({dispatcher, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
        if dispatcher.done():
            dispatcher.result()
            return
        # stopped: send nothing more, let what is in flight end (briefly), keep it
        dispatcher.cancel()
        await asyncio.gather(dispatcher, return_exceptions=True)
        if tasks:
            done, pending = await asyncio.wait(set(tasks), timeout=drain_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            _raise_first(done)
    except asyncio.CancelledError:
        dispatcher.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(dispatcher, *tasks, return_exceptions=True)
        raise


async def _wait_all(tasks: set[asyncio.Task[None]]) -> None:
    """Wait for all tasks (cancelling the waiter leaves them running); the first
    unexpected exception propagates (client errors never raise: they become records)."""
    if tasks:
        done, _ = await asyncio.wait(tasks)
        _raise_first(done)


def _raise_first(done: set[asyncio.Task[None]]) -> None:
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
