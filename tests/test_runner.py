"""The scheduler, driven with a programmable in-process send (no HTTP): exact timing
semantics of batch, closed loop and open loop."""

import asyncio

import numpy as np

from reasonperf.client.runner import RunClock, run_load
from reasonperf.records import RequestPlan, RequestRecord
from reasonperf.workload.arrivals import Arrival


def _plans(n):
    return [
        RequestPlan(request_id=f"r{i}", index=i, dataset="d", problem_id=str(i), sample_index=0, messages=[])
        for i in range(n)
    ]


def _fake_send(clock, durations, log):
    async def send(plan):
        rec = RequestRecord(request_id=plan.request_id, run_id="t", dataset="d", problem_id=plan.problem_id,
                            sample_index=0, sent_s=clock())
        log.append(("start", plan.request_id, clock()))
        await asyncio.sleep(durations[plan.index])
        rec.done_s = clock()
        return rec, []
    return send


def _run(plans, arrival, durations):
    clock = RunClock.start()
    log, records = [], []
    asyncio.run(run_load(plans, arrival, _fake_send(clock, durations, log),
                         lambda r, c: records.append(r), clock))
    return {r.request_id: r for r in records}, log


def test_batch_waits_for_the_slowest_request():
    durations = [0.05, 0.30, 0.05, 0.05, 0.05, 0.05]  # r1 is the straggler of batch 1
    recs, _ = _run(_plans(6), Arrival("batch", None, 3, None), durations)
    batch1_end = max(recs[f"r{i}"].done_s for i in range(3))
    assert batch1_end == recs["r1"].done_s
    for i in range(3, 6):  # the second batch starts only after the straggler ended
        assert recs[f"r{i}"].sent_s >= batch1_end
        assert recs[f"r{i}"].scheduled_s == recs["r3"].scheduled_s
    assert len(recs) == 6


def test_closed_loop_keeps_c_in_flight():
    durations = [0.1] * 6
    recs, log = _run(_plans(6), Arrival("closed", None, None, 2), durations)
    starts = sorted(t for _, _, t in log)
    # two at once, then two more when those end, ...
    assert starts[1] - starts[0] < 0.05 and starts[2] - starts[0] >= 0.09
    for r in recs.values():
        assert r.sent_s - r.scheduled_s < 0.05  # no client queue in a closed loop


def test_open_loop_follows_absolute_offsets_and_reports_slot_wait():
    offsets = [0.0, 0.05, 0.10, 0.15]
    plans = _plans(4)
    for p, o in zip(plans, offsets, strict=False):
        p.scheduled_s = o
    recs, _ = _run(plans, Arrival("open", offsets, None, None), [0.2] * 4)
    lags = [recs[f"r{i}"].sent_s - offsets[i] for i in range(4)]
    assert max(lags) < 0.02
    # with one slot, requests wait for it and the wait shows up as client queue
    plans = _plans(3)
    for p, o in zip(plans, offsets, strict=False):
        p.scheduled_s = o
    recs, _ = _run(plans, Arrival("open", offsets[:3], None, 1), [0.1] * 3)
    queue = np.array([recs[f"r{i}"].sent_s - recs[f"r{i}"].scheduled_s for i in range(3)])
    assert queue[0] < 0.02 and queue[1] > 0.03 and queue[2] > 0.08


def test_cancellation_writes_only_finished_requests():
    plans = _plans(4)
    clock = RunClock.start()
    records = []

    async def main():
        task = asyncio.create_task(run_load(plans, Arrival("batch", None, 4, None),
                                            _fake_send(clock, [0.01, 5, 5, 5], []),
                                            lambda r, c: records.append(r), clock))
        deadline = clock() + 5
        while not records and clock() < deadline:
            await asyncio.sleep(0.005)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    assert [r.request_id for r in records] == ["r0"]
