"""The embedded engine (vLLM CPU build, SmolLM2-135M) in bfloat16 against float32, side by
side on the same load: N concurrent streamed requests of exactly T tokens (ignore_eos).

Why: without avx512_bf16/AMX, vLLM's CPU bf16 path falls back from oneDNN and runs far
slower than float32 (issue 9.7); reasonperf now chooses the dtype from the CPU's flags.
This prints, for each dtype, the batch's wall time, TTFT p50 and output tokens/s, and the
ratio bf16 / float32 of the median wall times (< 1: bf16 is faster on this CPU), next to
what reasonperf would choose here.

Both engines run at once (about 2.5 GB each) and the batches alternate between them, R
rounds in alternating order, so that the load of a shared machine drifts over both alike;
only one batch runs at a time. --sequential runs one engine after the other instead.

    PYTHONPATH=src .venv/bin/python bench/engine_dtype.py [--requests 12] [--tokens 64]
                                                           [--rounds 3] [--sequential]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp

from reasonperf.engines import EngineSpec, make_engine
from reasonperf.engines.hardware import choose_cpu_dtype, read_cpu_flags

PROMPT = "Explain step by step why the sum of two even numbers is always even."


@dataclass
class Batch:
    dtype: str
    wall_s: float
    ttft_p50_s: float
    tokens: int

    @property
    def tok_s(self) -> float:
        return self.tokens / self.wall_s


async def _one(session: aiohttp.ClientSession, base_url: str, model: str,
               tokens: int) -> tuple[float, int]:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": tokens, "ignore_eos": True, "temperature": 0.0, "stream": True,
            "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    ttft = float("nan")
    used = 0
    async with session.post(f"{base_url}/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for raw in resp.content:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if ttft != ttft and any(c["delta"].get("content") for c in event.get("choices", [])):
                ttft = time.perf_counter() - t0
            if event.get("usage"):
                used = int(event["usage"]["completion_tokens"])
    return ttft, used


async def _batch(base_url: str, model: str, n: int, tokens: int) -> tuple[float, list[float], int]:
    timeout = aiohttp.ClientTimeout(total=3600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(_one(session, base_url, model, tokens)
                                         for _ in range(n)))
        wall = time.perf_counter() - t0
    return wall, [r[0] for r in results], sum(r[1] for r in results)


def start(dtype: str) -> Any:
    engine = make_engine(EngineSpec(dtype=dtype, max_model_len=1024, startup_timeout_s=900))
    engine.start()
    asyncio.run(_batch(engine.base_url, engine.served_model, 2, 8))  # warm-up
    return engine


def measure(engine: Any, dtype: str, n: int, tokens: int) -> Batch:
    wall, ttfts, used = asyncio.run(_batch(engine.base_url, engine.served_model, n, tokens))
    assert used == n * tokens, f"expected {n * tokens} tokens, got {used}"
    return Batch(dtype, wall, statistics.median(ttfts), used)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=12)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sequential", action="store_true")
    args = parser.parse_args()
    flags = read_cpu_flags()
    choice, reason = choose_cpu_dtype(flags)
    print(f"reasonperf's choice on this CPU: {choice} ({reason})")
    print(f"load: {args.requests} concurrent requests x {args.tokens} tokens, "
          f"{args.rounds} round(s)")
    walls: dict[str, list[float]] = {"bfloat16": [], "float32": []}

    def report(r: int, b: Batch) -> None:
        walls[b.dtype].append(b.wall_s)
        print(f"  round {r + 1} {b.dtype:>8}: wall {b.wall_s:7.2f} s  TTFT p50 "
              f"{b.ttft_p50_s:6.2f} s  {b.tok_s:7.1f} out tok/s", flush=True)

    if args.sequential:
        for dtype in walls:
            with start(dtype) as engine:
                for r in range(args.rounds):
                    report(r, measure(engine, dtype, args.requests, args.tokens))
    else:
        with ExitStack() as stack:
            engines = {dtype: stack.enter_context(start(dtype)) for dtype in walls}
            for r in range(args.rounds):
                order = list(walls) if r % 2 == 0 else list(reversed(walls))
                for dtype in order:
                    report(r, measure(engines[dtype], dtype, args.requests, args.tokens))
    bf16, fp32 = statistics.median(walls["bfloat16"]), statistics.median(walls["float32"])
    print(f"median wall: bfloat16 {bf16:.2f} s, float32 {fp32:.2f} s; "
          f"ratio bf16/fp32 = {bf16 / fp32:.2f} ({'bf16' if bf16 < fp32 else 'float32'} faster)")


if __name__ == "__main__":
    main()
