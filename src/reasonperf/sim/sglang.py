"""SGLang's scheduling policy: conservative admission by predicted decode growth, and
retraction when the pool runs out (registered as ``--policy sglang``).

A second policy object, not a flag on the vLLM one (python/sglang/srt/managers/scheduler.py
and schedule_policy.py, simplified):

- The KV pool is token-granular (page size 1): capacity = blocks x block size tokens.
- A step is a prefill batch when a waiting request can be admitted (prefill first;
  chunks of at most ``max_num_batched_tokens``), else a decode batch of every running
  request.
- Admission reserves the future: a request is admitted while
  ``prompt + min(max_new, 4096) * ratio <= free - sum over running of
  min(max_new - generated, 4096) * ratio``, with ``ratio`` the new-token ratio. It starts at
  ``0.7 * conservativeness``, decays by ``(start - min)/600`` per decode step down to
  ``0.1 * conservativeness``, and jumps back up after a retraction. ``max_new`` is the
  request's max_tokens; a reply that stops early frees what was reserved for it, which is
  why SGLang under-admits on reasoning workloads.
- A decode step that cannot get one slot per running request retracts requests, fewest
  generated tokens first (longer prompt first among equals), freeing their KV (recompute),
  back to the front of the queue.

One event per step (no closed-form runs): a reference for what-ifs, slower than vllm-v1.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from reasonperf.sim.core import check_fits
from reasonperf.sim.model import EngineConfig, SimRequest, SimResult
from reasonperf.sim.policies import POLICIES
from reasonperf.sim.steptime import LinearStepTime

CLIP_MAX_NEW = 4096
INIT_RATIO, MIN_RATIO, DECAY_STEPS = 0.7, 0.1, 600


class _R:
    __slots__ = ("P", "O", "R", "max_new", "g", "computed", "first", "vis", "done", "npre")

    def __init__(self, r: SimRequest) -> None:
        self.P, self.O, self.R = r.prompt_tokens, r.output_tokens, r.reasoning_tokens
        self.max_new = r.max_tokens or r.output_tokens
        self.g = self.computed = self.npre = 0
        self.first = self.vis = self.done = float("nan")


@POLICIES.register("sglang")
def sglang(requests: Sequence[SimRequest], cfg: EngineConfig, model: LinearStepTime,
           sample_interval_s: float | None = None, conservativeness: float = 1.0) -> SimResult:
    cfg.validate()
    check_fits(requests, cfg)
    cap = cfg.kv_blocks * cfg.block_size
    reqs = [_R(r) for r in requests]
    order = deque(sorted(range(len(reqs)), key=lambda i: requests[i].arrival_s))
    waiting: deque[int] = deque()
    running: list[int] = []
    used = 0
    t, steps, total_pre = 0.0, 0, 0
    start = INIT_RATIO * conservativeness
    floor = MIN_RATIO * conservativeness
    ratio = start
    samples: list[tuple[float, int, int, float, int]] = []
    next_tick = 0.0 if sample_interval_s else float("inf")

    def reserve(r: _R) -> float:
        return min(r.max_new - r.g, CLIP_MAX_NEW) * ratio

    def emit(r: _R, before: int, now: float) -> None:
        if before < 1 <= r.g:
            r.first = now
        if r.R < r.O and before <= r.R < r.g:
            r.vis = now

    while order or waiting or running:
        while order and requests[order[0]].arrival_s <= t:
            waiting.append(order.popleft())
        if not running and not waiting:
            t = requests[order[0]].arrival_s
            continue
        while sample_interval_s and next_tick <= t:
            samples.append((t, len(running), len(waiting), used / cap, total_pre))
            next_tick += sample_interval_s
        # a chunked prefill in flight continues first, then admission under the reservation
        budget = cfg.max_num_batched_tokens
        batch: list[tuple[int, int]] = []
        for rid in running:
            r = reqs[rid]
            if r.computed < r.P + r.g and budget > 0:
                k = min(r.P + r.g - r.computed, budget, cap - used)
                if k > 0:
                    batch.append((rid, k))
                    used += k
                    budget -= k
        reserved = sum(reserve(reqs[i]) for i in running)
        while waiting and budget > 0 and len(running) < cfg.max_num_seqs:
            rid = waiting[0]
            r = reqs[rid]
            if r.P + r.g + reserve(r) > cap - used - reserved:
                break
            k = min(r.P + r.g, budget)
            waiting.popleft()
            running.append(rid)
            used += k
            reserved += reserve(r)
            batch.append((rid, k))
            budget -= k
        if batch:
            pf = sum(k for _, k in batch)
            attn = sum(k * (reqs[i].computed + (k + 1) / 2) for i, k in batch)
            t += model.step_time(len(batch), 0, 0, pf, attn)
            steps += 1
            for i, k in batch:
                r = reqs[i]
                r.computed += k
                if r.computed == r.P + r.g:
                    before = r.g
                    r.g += 1
                    emit(r, before, t)
            _finish(reqs, running, t)
            used = sum(reqs[i].computed for i in running)
            continue
        # decode batch: one slot per prefilled running request, retract when short
        while running and cap - used < len(running):
            victim = min(running, key=lambda i: (reqs[i].g, -reqs[i].P))
            running.remove(victim)
            v = reqs[victim]
            used -= v.computed
            v.computed = 0
            v.npre += 1
            total_pre += 1
            waiting.appendleft(victim)
            ratio = min(1.0, max(ratio, _retract_ratio(reqs, running, cap)))
        decoders = [i for i in running if reqs[i].g >= 1
                    and reqs[i].computed == reqs[i].P + reqs[i].g - 1]
        if not decoders:
            continue
        kv = sum(reqs[i].computed + 1 for i in decoders)
        t += model.step_time(len(decoders), len(decoders), kv, 0, 0.0)
        steps += 1
        for i in decoders:
            r = reqs[i]
            before = r.g
            r.computed += 1
            r.g += 1
            emit(r, before, t)
        _finish(reqs, running, t)
        used = sum(reqs[i].computed for i in running)
        ratio = max(floor, ratio - (start - floor) / DECAY_STEPS)
    if sample_interval_s:
        samples.append((t, 0, 0, 0.0, total_pre))
    return SimResult(np.array([r.first for r in reqs]), np.array([r.vis for r in reqs]),
                     np.array([r.done for r in reqs]),
                     np.array([r.npre for r in reqs], dtype=np.int64), steps, total_pre, 0,
                     samples)


def _finish(reqs: list[_R], running: list[int], now: float) -> None:
    for i in [i for i in running if reqs[i].g >= reqs[i].O]:
        reqs[i].done = now
        running.remove(i)


def _retract_ratio(reqs: list[_R], running: list[int], cap: int) -> float:
    """SGLang's ratio after a retraction: what the survivors still need per token of the
    pool (total decoded + remaining, over the pool), at least the old value."""
    remaining = sum(min(reqs[i].max_new - reqs[i].g, CLIP_MAX_NEW) for i in running)
    return (sum(reqs[i].g for i in running) + remaining) / max(cap, 1)
