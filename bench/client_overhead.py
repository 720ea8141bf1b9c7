"""Client overhead benchmark: what the measuring tool itself costs.

Against the fake server (in its own process) streaming as fast as it can:
  1. CPU microseconds per chunk and the chunk rate one client process sustains,
     reasonperf's client vs a naive baseline client (aiohttp lines + json.loads, no
     timing, no reasoning split);
  2. dispatch lag (sent_s - scheduled_s) p50/p99 at 10, 100 and 500 req/s, reasonperf's
     absolute-deadline dispatcher vs a naive relative-sleep dispatcher.
Prints both side by side with their ratio. Targets (issue 2): >= 20,000 chunks/s on one
core, p99 dispatch lag < 2 ms at 100 req/s.

    .venv/bin/python bench/client_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import numpy as np

from reasonperf.client.openai import EndpointConfig, make_session, send_request
from reasonperf.client.runner import RunClock, event_loop_factory, run_load
from reasonperf.records import RequestPlan
from reasonperf.workload.arrivals import make_arrival

ROOT = Path(__file__).resolve().parents[1]


def start_server(tokens: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_server", "--itl", "0", "--answer-tokens", str(tokens),
         "--reasoning-tokens", "0"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def plan(i: int, max_tokens: int) -> RequestPlan:
    return RequestPlan(request_id=f"r{i}", index=i, dataset="bench", problem_id=str(i),
                       sample_index=0, messages=[{"role": "user", "content": "hi"}],
                       max_tokens=max_tokens)


async def reasonperf_stream(url: str, n: int, conc: int) -> int:
    cfg = EndpointConfig(base_url=url, model="fake-model", continuous_usage=True)
    clock = RunClock.start()
    sem = asyncio.Semaphore(conc)
    async with make_session(conc) as session:
        async def one(i: int) -> int:
            async with sem:
                _rec, chunks = await send_request(session, cfg, plan(i, 100_000), clock, "bench")
                return len(chunks)
        return sum(await asyncio.gather(*(one(i) for i in range(n))))


async def naive_stream(url: str, n: int, conc: int) -> int:
    sem = asyncio.Semaphore(conc)
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    async with aiohttp.ClientSession() as session:
        async def one() -> int:
            count = 0
            async with sem, session.post(url + "/chat/completions", json=body) as resp:
                async for line in resp.content:
                    if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
                        json.loads(line[6:])
                        count += 1
            return count
        return sum(await asyncio.gather(*(one() for _ in range(n))))


def measure_stream(fn, url: str, n: int, conc: int) -> tuple[float, float]:
    cpu0 = time.process_time()
    chunks = asyncio.run(fn(url, n, conc))
    cpu = time.process_time() - cpu0
    return cpu / chunks * 1e6, chunks / cpu


async def reasonperf_dispatch(url: str, rate: float, n: int) -> np.ndarray:
    cfg = EndpointConfig(base_url=url, model="fake-model")
    arrival = make_arrival("constant", n, rate=rate)
    plans = [plan(i, 5) for i in range(n)]
    records = []
    async with make_session(64) as session:
        clock = RunClock.start()
        start = clock() + 0.05
        for p, off in zip(plans, arrival.offsets or [], strict=True):
            p.scheduled_s = start + off
        await run_load(plans, arrival, lambda p: send_request(session, cfg, p, clock, "b"),
                       lambda r, c: records.append(r), clock)
    return np.array([r.sent_s - r.scheduled_s for r in records])


async def naive_dispatch(url: str, rate: float, n: int) -> np.ndarray:
    """The common pattern: sleep(gap) between sends, timestamps relative to the start."""
    body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "max_tokens": 5}
    lags: list[float] = []
    async with aiohttp.ClientSession() as session:
        async def one(scheduled: float, t0: float) -> None:
            lags.append(time.perf_counter() - t0 - scheduled)
            async with session.post(url + "/chat/completions", json=body) as resp:
                async for _ in resp.content:
                    pass
        t0 = time.perf_counter()
        tasks = []
        for i in range(n):
            tasks.append(asyncio.create_task(one(i / rate, t0)))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
    return np.array(lags)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    scale = 0.3 if args.quick else 1.0

    proc, url = start_server(tokens=2000)
    try:
        n = max(4, int(20 * scale))
        ours = measure_stream(reasonperf_stream, url, n, 8)
        base = measure_stream(naive_stream, url, n, 8)
    finally:
        proc.terminate()
    print("streaming (client CPU only; the server runs in another process)")
    print(f"{'':28}{'reasonperf':>14}{'naive':>14}{'ratio':>8}")
    print(f"{'CPU us per chunk':28}{ours[0]:14.1f}{base[0]:14.1f}{ours[0] / base[0]:8.2f}")
    print(f"{'chunks/s per core':28}{ours[1]:14,.0f}{base[1]:14,.0f}{ours[1] / base[1]:8.2f}")

    proc, url = start_server(tokens=5)
    try:
        print("\ndispatch lag sent - scheduled (ms)")
        print(f"{'rate':>8}{'ours p50':>10}{'ours p99':>10}{'naive p50':>11}{'naive p99':>11}{'p99 ratio':>11}")
        for rate in (10, 100, 500):
            n = max(20, int(rate * 3 * scale))
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                ours_l = runner.run(reasonperf_dispatch(url, rate, n)) * 1e3
            base_l = asyncio.run(naive_dispatch(url, rate, n)) * 1e3
            o50, o99 = np.percentile(ours_l, [50, 99])
            b50, b99 = np.percentile(base_l, [50, 99])
            print(f"{rate:8}{o50:10.2f}{o99:10.2f}{b50:11.2f}{b99:11.2f}{o99 / b99:11.2f}")
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
