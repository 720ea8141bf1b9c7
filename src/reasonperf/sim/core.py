"""The event-driven vLLM V1 core: decode runs in closed form, explicit steps only at events.

The scheduler rules (vllm/v1/core/sched/scheduler.py), one step:

1. Running requests first, in admission order: each gets ``min(need, budget)`` tokens
   (need = prompt + generated - computed; 1 + k drafts when decoding with speculation).
   When its KV blocks cannot be allocated the newest running request is preempted
   (recompute: its blocks are freed, ``computed = 0``, front of the waiting queue) until
   the allocation fits or the request itself was the victim.
2. If nothing was preempted in this step, waiting requests are admitted in order while
   the token budget and ``max_num_seqs`` allow and the blocks of the request's whole
   sequence are free (``scheduler_reserve_full_isl``); the first chunk is scheduled.
3. A request whose scheduled tokens reach prompt + generated samples one token.

Why it is fast (docs/simulator.md): a decoding request stores ``c = context - G`` once
(``G`` = the global step counter), so the sum of contexts is ``S1 + B*G`` and the blocks
allocated in a step follow from a count of decoders per residue of ``c`` modulo the
block size. While only decodes
run and nothing can be admitted, step k of the run takes ``alpha + beta*k``; the run ends
at the next per-request mark (first token, first visible token, finish), the step at which
the blocks run out, the step after an arrival into an empty queue, or a sampler tick.
Steps with a prefill or an admission update the aggregates in O(1) per admitted request;
only a step that preempts a decoding request (and every step under speculative decoding)
materializes the running requests.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Sequence

import numpy as np

from reasonperf.sim.model import EngineConfig, SimRequest, SimResult
from reasonperf.sim.steptime import LinearStepTime


class _Req:
    __slots__ = ("P", "O", "vis", "marks", "mi", "times", "g", "computed", "c", "decoding",
                 "pdone", "blocks", "npre", "ver", "alpha", "rng")

    def __init__(self, r: SimRequest) -> None:
        self.P = r.prompt_tokens
        self.O = r.output_tokens
        # generated-token count of the first visible token (None: all thinking)
        self.vis = r.reasoning_tokens + 1 if r.reasoning_tokens < self.O else None
        self.marks = sorted({1, self.O} | ({self.vis} if self.vis else set()))
        self.mi = 0  # index of the next mark (a generated-token count) to reach
        self.times: list[float] = []
        self.g = 0  # tokens generated
        self.computed = 0  # tokens with KV (valid while not decoding in the fast path)
        self.c = 0  # virtual base while decoding: context at step s is c + s
        self.decoding = False  # aggregated as a decoder (fast path)
        self.pdone = False  # prefill complete since the last preemption
        self.blocks = 0  # KV blocks held (while not aggregated)
        self.npre = 0
        self.ver = 0
        self.alpha = 0.0
        self.rng: random.Random | None = None


def check_fits(requests: Sequence[SimRequest], cfg: EngineConfig) -> None:
    """A request whose whole context cannot fit the cache would preempt itself forever."""
    cap = cfg.kv_blocks * cfg.block_size
    for i, r in enumerate(requests):
        if r.prompt_tokens < 1 or r.output_tokens < 1:
            raise ValueError(f"request {i}: prompt_tokens and output_tokens must be >= 1")
        if r.prompt_tokens + r.output_tokens - 1 + cfg.num_speculative_tokens > cap:
            raise ValueError(
                f"request {i}: {r.prompt_tokens}+{r.output_tokens} tokens exceed the KV cache "
                f"({cap} tokens); raise kv_blocks"
            )


def acceptance_rng(cfg: EngineConfig, index: int) -> tuple[float, random.Random]:
    """Per-request acceptance rate (Beta around the mean) and the stream of draws; seeded
    by (seed, request index) so every implementation sees the same draws."""
    rng = random.Random(cfg.seed * 1_000_003 + index)
    k = cfg.acceptance_concentration
    a = cfg.acceptance
    alpha = rng.betavariate(a * k, (1 - a) * k) if a > 0 else 0.0
    return alpha, rng


def accepted_drafts(alpha: float, rng: random.Random, k: int) -> int:
    """Leading drafts accepted out of k (each with probability alpha)."""
    n = 0
    while n < k and rng.random() < alpha:
        n += 1
    return n


class VllmV1Core:
    """One simulation of the vLLM V1 scheduler. Use :func:`simulate`."""

    def __init__(self, requests: Sequence[SimRequest], cfg: EngineConfig,
                 model: LinearStepTime, sample_interval_s: float | None = None) -> None:
        cfg.validate()
        check_fits(requests, cfg)
        self.cfg, self.model = cfg, model
        self.bs = cfg.block_size
        self.order = sorted(range(len(requests)), key=lambda i: requests[i].arrival_s)
        self.arr = [requests[i].arrival_s for i in self.order]
        self.reqs = [_Req(r) for r in requests]
        if cfg.num_speculative_tokens:
            for i, r in enumerate(self.reqs):
                r.alpha, r.rng = acceptance_rng(cfg, i)
        self.interval = sample_interval_s
        # state
        self.T = 0.0
        self.s = 0  # steps taken = the global decode counter G
        self.free = cfg.kv_blocks
        self.running: dict[int, None] = {}  # admission order; popitem() = newest
        self.waiting: deque[int] = deque()
        self.pf = -1  # the running request still in prefill (always the newest), or -1
        # decode aggregates
        self.B = 0
        self.S1 = 0
        self.cnt = [0] * self.bs
        self.heap: list[tuple[int, int, int]] = []  # (step of next mark, rid, ver)
        self.total_pre = 0
        self.tokens = 0
        self.samples: list[tuple[float, int, int, float, int]] = []
        self.next_tick = 0.0 if sample_interval_s else math.inf

    # ---- decode aggregates ------------------------------------------------------------
    def _new_blocks(self, s: int, n: int) -> int:
        """Blocks the decoders allocate over steps s .. s+n-1: a decoder needs one in step
        j exactly when its context c + j - 1 is a multiple of the block size."""
        bs, cnt = self.bs, self.cnt
        full, rem = divmod(n, bs)
        total = self.B * full
        if rem:
            a = (1 - s) % bs  # residue that allocates in step s; then a-1, a-2, ...
            lo = a - rem + 1
            if lo >= 0:
                total += sum(cnt[lo:a + 1])
            else:
                total += sum(cnt[:a + 1]) + sum(cnt[bs + lo:])
        return total

    def _add_decoder(self, rid: int, r: _Req) -> None:
        """r has computed = P + g - 1 after step self.s - 1; context in step s is c + s."""
        r.decoding = True
        r.c = r.P + r.g - self.s
        self.B += 1
        self.S1 += r.c
        self.cnt[r.c % self.bs] += 1
        r.ver += 1
        self._push_mark(rid, r)

    def _push_mark(self, rid: int, r: _Req) -> None:
        # g after step s is c + s - P + 1 (one token a step): mark m at s = m - 1 + P - c
        heapq.heappush(self.heap, (r.marks[r.mi] - 1 + r.P - r.c, rid, r.ver))

    def _drop_decoder(self, r: _Req) -> None:
        self.B -= 1
        self.S1 -= r.c
        self.cnt[r.c % self.bs] -= 1
        r.decoding = False
        r.ver += 1

    def _record_marks(self, rid: int, r: _Req, t: float) -> bool:
        """Record the marks reached by r.g at time t; True when r finished."""
        while r.mi < len(r.marks) and r.marks[r.mi] <= r.g:
            r.times.append(t)
            r.mi += 1
        return r.g >= r.O

    # ---- main loop ----------------------------------------------------------------------
    def run(self) -> SimResult:
        n = len(self.arr)
        ai = 0
        spec = self.cfg.num_speculative_tokens > 0
        while True:
            while ai < n and self.arr[ai] <= self.T:
                self.waiting.append(self.order[ai])
                ai += 1
            if not self.running and not self.waiting:
                if ai >= n:
                    break
                self._tick_until(self.arr[ai])
                self.T = self.arr[ai]
                continue
            if self.T >= self.next_tick:
                self._sample()
            if spec:
                self._explicit_step()
                continue
            extra = self.cnt[(1 - self.s) % self.bs]
            if extra > self.free:
                self._explicit_step()
            elif self.pf >= 0 or self._admissible(extra):
                self._aggregated_step(extra)
            else:
                self._decode_run(ai)
        return self._result()

    def _tick_until(self, t: float) -> None:
        while self.next_tick <= t:
            self._sample(self.next_tick)

    def _sample(self, t: float | None = None) -> None:
        used = self.cfg.kv_blocks - self.free
        at = self.T if t is None else t
        self.samples.append((at, len(self.running), len(self.waiting),
                             used / self.cfg.kv_blocks, self.total_pre))
        assert self.interval
        while self.next_tick <= at:
            self.next_tick += self.interval

    def _admissible(self, extra: int) -> bool:
        if not self.waiting or len(self.running) >= self.cfg.max_num_seqs:
            return False
        budget = self.cfg.max_num_batched_tokens - self.B
        if budget <= 0:
            return False
        r = self.reqs[self.waiting[0]]
        # vLLM >= 0.3x (scheduler_reserve_full_isl): the whole sequence must fit to admit
        return -(-(r.P + r.g) // self.bs) <= self.free - extra

    def _decode_run(self, ai: int) -> None:
        """Decode-only steps until the next event, in closed form."""
        s, B = self.s, self.B
        while self.heap and self.heap[0][2] != self.reqs[self.heap[0][1]].ver:
            heapq.heappop(self.heap)
        n = self.heap[0][0] - s + 1
        alpha, beta = self.model.decode_run(B, self.S1 + B * s)
        # blocks: the run may go on while the decoders' new blocks fit
        free = self.free
        if B * -(-n // self.bs) > free and self._new_blocks(s, n) > free:
            lo, hi = 1, n  # lo steps fit, hi steps do not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self._new_blocks(s, mid) <= free:
                    lo = mid
                else:
                    hi = mid
            n = lo
        if not self.waiting and ai < len(self.arr):
            n = _steps_to_reach(alpha, beta, self.arr[ai] - self.T, n)
        if self.next_tick < math.inf:
            n = _steps_to_reach(alpha, beta, self.next_tick - self.T, n)
        self.free -= self._new_blocks(s, n)
        self.T += n * alpha + beta * (n * (n - 1) / 2)
        self.s += n
        self.tokens += n * B
        self._finish_decode_marks(s + n - 1)

    def _finish_decode_marks(self, step: int) -> None:
        """Pop the decoders whose next mark is at ``step`` (just taken)."""
        heap, reqs = self.heap, self.reqs
        while heap and heap[0][0] <= step:
            _, rid, ver = heapq.heappop(heap)
            r = reqs[rid]
            if ver != r.ver:
                continue
            r.g = r.c + step - r.P + 1
            if self._record_marks(rid, r, self.T):
                self.free += -(-(r.c + step) // self.bs)
                self._drop_decoder(r)
                del self.running[rid]
            else:
                self._push_mark(rid, r)

    def _aggregated_step(self, extra: int) -> None:
        """One step with a prefill chunk or admissions; decoders stay aggregated."""
        cfg, bs, reqs = self.cfg, self.bs, self.reqs
        self.free -= extra
        budget = cfg.max_num_batched_tokens - self.B
        sched: list[tuple[int, int]] = []
        preempted = False
        if self.pf >= 0 and budget > 0:
            rid = self.pf
            r = reqs[rid]
            k = min(r.P + r.g - r.computed, budget)
            more = -(-(r.computed + k) // bs) - r.blocks
            if more > self.free:  # the newest running request is r itself
                self.running.popitem()
                self._preempt(rid, r)
                self.pf = -1
                preempted = True
            else:
                self.free -= more
                r.blocks += more
                sched.append((rid, k))
                budget -= k
        if not preempted:
            self._admit(sched, budget)
        self._finish_step(sched, self.B, self.S1 + self.B * self.s)

    def _preempt(self, rid: int, r: _Req) -> None:
        self.free += r.blocks
        r.blocks = 0
        r.computed = 0
        r.pdone = False
        r.npre += 1
        self.total_pre += 1
        self.waiting.appendleft(rid)

    def _admit(self, sched: list[tuple[int, int]], budget: int) -> None:
        while self.waiting and budget > 0 and len(self.running) < self.cfg.max_num_seqs:
            rid = self.waiting[0]
            r = self.reqs[rid]
            k = min(r.P + r.g, budget)
            if -(-(r.P + r.g) // self.bs) > self.free:  # the full sequence must fit
                break
            blocks = -(-k // self.bs)
            self.waiting.popleft()
            self.free -= blocks
            r.blocks = blocks
            self.running[rid] = None
            sched.append((rid, k))
            budget -= k

    def _finish_step(self, sched: list[tuple[int, int]], dec: int, kv: int) -> None:
        """Time the step, then apply it: decoders advance, prefill chunks complete."""
        pf_tokens = 0
        attn = 0.0
        for rid, k in sched:
            r = self.reqs[rid]
            pf_tokens += k
            attn += k * (r.computed + (k + 1) / 2)
        self.T += self.model.step_time(dec + len(sched), dec, kv, pf_tokens, attn)
        step = self.s
        self.tokens += dec + pf_tokens
        self._finish_decode_marks(step)
        self.s += 1
        self.pf = -1
        for rid, k in sched:
            r = self.reqs[rid]
            r.computed += k
            if r.computed < r.P + r.g:
                self.pf = rid
                continue
            r.g += 1
            r.pdone = True
            if self._record_marks(rid, r, self.T):
                self.free += r.blocks
                del self.running[rid]
            else:
                self._add_decoder(rid, r)

    # ---- the materialized step: decode preemption, speculative decoding ----------------
    def _explicit_step(self) -> None:
        cfg, bs, reqs, s = self.cfg, self.bs, self.reqs, self.s
        k_spec = cfg.num_speculative_tokens
        order = list(self.running)
        for rid in order:  # materialize the decoders
            r = reqs[rid]
            if r.decoding:
                r.g = r.c + s - r.P
                r.computed = r.P + r.g - 1
                r.blocks = -(-r.computed // bs)
                self._drop_decoder(r)
        self.heap = []
        budget = cfg.max_num_batched_tokens
        sched: list[tuple[int, int]] = []
        preempted = False
        i = 0
        while i < len(order) and budget > 0:
            rid = order[i]
            r = reqs[rid]
            dec = r.pdone
            k = min(r.P + r.g - r.computed + (k_spec if dec else 0), budget)
            ok = True
            while True:
                more = -(-(r.computed + k) // bs) - r.blocks
                if more <= self.free:
                    self.free -= more
                    r.blocks += more
                    break
                vid = order.pop()
                self._preempt(vid, reqs[vid])
                preempted = True
                if vid == rid:
                    ok = False
                    break
            if not ok:
                break
            sched.append((rid, k))
            budget -= k
            i += 1
        self.running = dict.fromkeys(order)
        if not preempted:
            self._admit(sched, budget)
        # time it
        n_seq = len(sched)
        dec_tok = kv = pf_tok = 0
        attn = 0.0
        is_dec = []
        for rid, k in sched:
            r = reqs[rid]
            d = r.pdone
            is_dec.append(d)
            if d:
                dec_tok += k
                kv += r.computed + 1
            else:
                pf_tok += k
                attn += k * (r.computed + (k + 1) / 2)
        self.T += self.model.step_time(n_seq, dec_tok, kv, pf_tok, attn)
        self.tokens += dec_tok + pf_tok
        self.s += 1
        self.pf = -1
        for (rid, k), d in zip(sched, is_dec, strict=True):
            r = reqs[rid]
            if d and k_spec:
                assert r.rng is not None
                acc = accepted_drafts(r.alpha, r.rng, k - 1)
                new = min(1 + acc, r.O - r.g)
                r.computed += new
                r.g += new
            else:
                r.computed += k
                if r.computed < r.P + r.g:
                    self.pf = rid
                    continue
                r.g += 1
                r.pdone = True
            if self._record_marks(rid, r, self.T):
                self.free += r.blocks
                del self.running[rid]
        for rid in self.running:  # aggregate the decoders again
            r = reqs[rid]
            if rid != self.pf and not k_spec:
                self._add_decoder(rid, r)

    def _result(self) -> SimResult:
        n = len(self.reqs)
        first = np.full(n, np.nan)
        vis = np.full(n, np.nan)
        done = np.full(n, np.nan)
        pre = np.zeros(n, dtype=np.int64)
        for i, r in enumerate(self.reqs):
            t = dict(zip(r.marks, r.times, strict=False))
            first[i] = t.get(1, np.nan)
            done[i] = t.get(r.O, np.nan)
            if r.vis is not None:
                vis[i] = t.get(r.vis, np.nan)
            pre[i] = r.npre
        if self.interval:
            self._sample()
        return SimResult(first, vis, done, pre, self.s, self.total_pre, self.tokens,
                         self.samples)


def _steps_to_reach(alpha: float, beta: float, gap: float, cap: int) -> int:
    """min(cap, smallest n >= 1 with n*alpha + beta*n(n-1)/2 >= gap): the step boundary
    at or after an event ``gap`` seconds ahead, if the run gets that far."""
    if gap <= 0:
        return 1

    def total(m: int) -> float:
        return m * alpha + beta * (m * (m - 1) / 2)

    if total(cap) < gap:
        return cap

    if beta > 0:
        b = alpha - beta / 2
        guess = (-b + math.sqrt(b * b + 2 * beta * gap)) / beta
    else:
        guess = gap / alpha
    n = max(1, math.ceil(guess))
    while n > 1 and total(n - 1) >= gap:
        n -= 1
    while total(n) < gap:
        n += 1
    return min(n, cap)


def simulate(requests: Sequence[SimRequest], cfg: EngineConfig, model: LinearStepTime,
             sample_interval_s: float | None = None) -> SimResult:
    """Simulate the vLLM V1 scheduler on ``requests``; see the module docstring."""
    return VllmV1Core(requests, cfg, model, sample_interval_s).run()
