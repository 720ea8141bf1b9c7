"""The second scheduling policy (SGLang's conservative admission with retraction)."""

from __future__ import annotations

import random

import numpy as np

from reasonperf.sim.model import EngineConfig, SimRequest
from reasonperf.sim.policies import POLICIES
from reasonperf.sim.sglang import sglang
from reasonperf.sim.steptime import LinearStepTime

MODEL = LinearStepTime(c_step=0.01, c_seq=1e-4, c_kv=1e-7, c_prefill=1e-5)


def _reasoning_load(n: int, max_tokens: int, seed: int = 0) -> list[SimRequest]:
    """Replies far shorter than max_tokens: the reasoning case SGLang under-admits on."""
    rng = random.Random(seed)
    return [SimRequest(0.05 * i, rng.randint(50, 200), rng.randint(100, 400), 0, max_tokens)
            for i in range(n)]


def test_sglang_is_registered_and_finishes_everything() -> None:
    reqs = _reasoning_load(40, 500)
    res = POLICIES.get("sglang")(reqs, EngineConfig(kv_blocks=2000), MODEL, 0.1)
    assert not np.isnan(res.done_s).any()
    assert (res.first_token_s <= res.done_s).all()
    assert res.total_preemptions == 0


def test_sglang_under_admits_when_max_tokens_is_large() -> None:
    reqs = _reasoning_load(60, 8000)
    cfg = EngineConfig(kv_blocks=1000, block_size=16)  # 16k tokens: ~40 actual replies fit
    vllm = POLICIES.get("vllm-v1")(reqs, cfg, MODEL, 0.05)
    sg = sglang(reqs, cfg, MODEL, 0.05)
    peak_running = {name: max(s[1] for s in r.samples) for name, r in (("vllm", vllm), ("sg", sg))}
    peak_kv = {name: max(s[3] for s in r.samples) for name, r in (("vllm", vllm), ("sg", sg))}
    assert peak_running["sg"] < peak_running["vllm"], peak_running
    assert peak_kv["sg"] < 0.9 and peak_kv["sg"] < peak_kv["vllm"], peak_kv
    assert sg.makespan_s > vllm.makespan_s


def test_sglang_retracts_when_the_pool_runs_out() -> None:
    """max_tokens below the real length (unknown budgets): the reservation is too small
    and decode runs out of slots, so requests are retracted and recomputed."""
    rng = random.Random(1)
    reqs = [SimRequest(0.0, 100, rng.randint(600, 900), 0, 50) for _ in range(30)]
    res = sglang(reqs, EngineConfig(kv_blocks=200, block_size=16), MODEL)
    assert res.total_preemptions > 0
    assert not np.isnan(res.done_s).any()


def test_what_if_lengths_come_from_the_measured_joint_distribution() -> None:
    """Draws keep the (dataset, difficulty) proportions and draw whole (prompt, reasoning,
    answer) triples from their own stratum."""
    import pyarrow as pa

    from reasonperf.sim.workload import sample

    rows = []
    for i in range(40):
        hard = i % 4 == 0  # a quarter are hard, with long reasoning
        rows.append({"request_id": f"r{i}", "status": "ok", "sent_s": 0.0, "done_s": 1.0,
                     "dataset": "math", "difficulty": "hard" if hard else "easy",
                     "prompt_tokens": 100 + i, "completion_tokens": 5000 if hard else 300,
                     "reasoning_tokens": 4800 if hard else 200})
    wl = sample(pa.Table.from_pylist(rows), [0.0] * 2000, seed=1)
    hard = [r for r, row in zip(wl.requests, wl.rows, strict=True) if row["difficulty"] == "hard"]
    assert 0.2 < len(hard) / 2000 < 0.3
    assert all((r.output_tokens, r.reasoning_tokens) == (5000, 4800) for r in hard)
    triples = {(r["prompt_tokens"], r["completion_tokens"], r["reasoning_tokens"]) for r in rows}
    assert all((r.prompt_tokens, r.output_tokens, r.reasoning_tokens) in triples
               for r in wl.requests)
