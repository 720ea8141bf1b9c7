"""The slow reference: the vLLM V1 scheduler one step at a time, every request touched in
every step, no aggregates. The fast core (reasonperf.sim.core) must match it exactly."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from reasonperf.sim.core import acceptance_rng, accepted_drafts
from reasonperf.sim.model import EngineConfig, SimRequest
from reasonperf.sim.steptime import LinearStepTime


@dataclass
class RefState:
    prompt: int
    output: int
    reasoning: int
    computed: int = 0
    generated: int = 0
    prefilled: bool = False
    preemptions: int = 0
    first_token: float = float("nan")
    first_visible: float = float("nan")
    done: float = float("nan")
    alpha: float = 0.0
    rng: object = None
    blocks: int = 0


@dataclass
class RefResult:
    first_token_s: np.ndarray
    first_visible_s: np.ndarray
    done_s: np.ndarray
    preemptions: np.ndarray
    steps: int
    total_preemptions: int
    samples: list = field(default_factory=list)


def reference_simulate(requests: list[SimRequest], cfg: EngineConfig,
                       model: LinearStepTime, on_tokens=None) -> RefResult:  # type: ignore[no-untyped-def]
    """``on_tokens(index, t, n)`` is called whenever request ``index`` gets n new tokens."""
    bs = cfg.block_size
    k_spec = cfg.num_speculative_tokens
    states = [RefState(r.prompt_tokens, r.output_tokens, r.reasoning_tokens) for r in requests]
    if k_spec:
        for i, st in enumerate(states):
            st.alpha, st.rng = acceptance_rng(cfg, i)
    pending = sorted(range(len(requests)), key=lambda i: requests[i].arrival_s)
    pending_q = deque(pending)
    waiting: deque[int] = deque()
    running: list[int] = []
    free = cfg.kv_blocks
    t = 0.0
    steps = 0
    total_pre = 0

    def blocks_for(tokens: int) -> int:
        return (tokens + bs - 1) // bs

    while pending_q or waiting or running:
        while pending_q and requests[pending_q[0]].arrival_s <= t:
            waiting.append(pending_q.popleft())
        if not running and not waiting:
            t = requests[pending_q[0]].arrival_s
            continue
        budget = cfg.max_num_batched_tokens
        scheduled: list[tuple[int, int, bool]] = []
        preempted_this_step = False
        i = 0
        while i < len(running) and budget > 0:
            rid = running[i]
            st = states[rid]
            want = st.prompt + st.generated - st.computed + (k_spec if st.prefilled else 0)
            n = min(want, budget)
            while True:
                need = blocks_for(st.computed + n) - st.blocks
                if need <= free:
                    free -= need
                    st.blocks += need
                    break
                victim = running.pop()
                vs = states[victim]
                free += vs.blocks
                vs.blocks = 0
                vs.computed = 0
                vs.prefilled = False
                vs.preemptions += 1
                total_pre += 1
                waiting.appendleft(victim)
                preempted_this_step = True
                if victim == rid:
                    n = 0
                    break
            if n == 0:
                break
            scheduled.append((rid, n, st.prefilled))
            budget -= n
            i += 1
        if not preempted_this_step:
            while waiting and budget > 0 and len(running) < cfg.max_num_seqs:
                rid = waiting[0]
                st = states[rid]
                n = min(st.prompt + st.generated, budget)
                if blocks_for(st.prompt + st.generated) > free:  # whole sequence must fit
                    break
                waiting.popleft()
                free -= blocks_for(n)
                st.blocks = blocks_for(n)
                running.append(rid)
                scheduled.append((rid, n, False))
                budget -= n
        seqs = len(scheduled)
        dec_tokens = sum(n for _, n, d in scheduled if d)
        kv = sum(states[rid].computed + 1 for rid, _, d in scheduled if d)
        pf_tokens = sum(n for _, n, d in scheduled if not d)
        attn = 0.0
        for rid, n, d in scheduled:
            if not d:
                attn += n * (states[rid].computed + (n + 1) / 2)
        t += model.step_time(seqs, dec_tokens, kv, pf_tokens, attn)
        steps += 1
        for rid, n, was_decoding in scheduled:
            st = states[rid]
            before = st.generated
            if was_decoding and k_spec:
                accepted = accepted_drafts(st.alpha, st.rng, n - 1)  # type: ignore[arg-type]
                new = min(1 + accepted, st.output - st.generated)
                st.computed += new
                st.generated += new
            else:
                st.computed += n
                if st.computed < st.prompt + st.generated:
                    continue
                st.generated += 1
                st.prefilled = True
            if on_tokens is not None:
                on_tokens(rid, t, st.generated - before)
            if before < 1 <= st.generated:
                st.first_token = t
            vis = st.reasoning + 1
            if st.reasoning < st.output and before < vis <= st.generated:
                st.first_visible = t
            if st.generated >= st.output:
                st.done = t
                free += st.blocks
                st.blocks = 0
                running.remove(rid)
    return RefResult(
        np.array([s.first_token for s in states]),
        np.array([s.first_visible for s in states]),
        np.array([s.done for s in states]),
        np.array([s.preemptions for s in states]),
        steps,
        total_pre,
    )
