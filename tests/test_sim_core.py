"""The fast event-driven core against the one-step-at-a-time reference (tests/sim_reference.py):
finish times to 1e-9 s, identical preemption and step counts, on randomized scenarios."""

from __future__ import annotations

import random

import numpy as np
import pytest

from reasonperf.sim.core import simulate
from reasonperf.sim.model import EngineConfig, SimRequest
from reasonperf.sim.steptime import LinearStepTime
from tests.sim_reference import reference_simulate


def _scenario(seed: int) -> tuple[list[SimRequest], EngineConfig, LinearStepTime, bool]:
    """Random requests and settings; every third scenario gets a cache small enough to
    preempt heavily, every fourth arrives as one batch at t=0."""
    rng = random.Random(seed)
    n = rng.randint(20, 160)
    bs = rng.choice([1, 4, 16, 128])
    tight = seed % 3 == 0
    batch = seed % 4 == 0
    rate = rng.uniform(20.0, 100.0) if tight else rng.uniform(0.5, 50.0)
    t = 0.0
    reqs = []
    for _ in range(n):
        if not batch:
            t += rng.expovariate(rate)
        out = max(1, int(rng.lognormvariate(4.5, 1.0)))
        reasoning = rng.choice([0, out, rng.randint(0, out)])
        reqs.append(SimRequest(t, rng.randint(1, 700), out, reasoning))
    longest = max(r.prompt_tokens + r.output_tokens for r in reqs)
    max_seqs = rng.choice([16, 64, 256] if tight else [1, 4, 16, 64, 256])
    if tight:
        blocks = -(-longest // bs) + rng.randint(0, -(-longest // bs) // 2)
    else:
        blocks = -(-sum(r.prompt_tokens + r.output_tokens for r in reqs) // bs) + n
    cfg = EngineConfig(
        kv_blocks=blocks,
        block_size=bs,
        max_num_seqs=max_seqs,
        max_num_batched_tokens=max(max_seqs, rng.choice([16, 256, 512, 2048, 8192])),
    )
    model = LinearStepTime(
        c_step=rng.uniform(1e-3, 2e-2),
        c_seq=rng.uniform(0, 1e-4),
        c_decode=rng.uniform(0, 5e-5),
        c_kv=rng.uniform(0, 1e-6),
        c_prefill=rng.uniform(0, 1e-4),
        c_attn=rng.uniform(0, 1e-8),
    )
    return reqs, cfg, model, tight


def _assert_same(fast, ref) -> None:  # type: ignore[no-untyped-def]
    assert fast.steps == ref.steps
    assert fast.total_preemptions == ref.total_preemptions
    assert np.array_equal(fast.preemptions, ref.preemptions)
    for name in ("first_token_s", "first_visible_s", "done_s"):
        a, b = getattr(fast, name), getattr(ref, name)
        assert np.array_equal(np.isnan(a), np.isnan(b)), name
        ok = ~np.isnan(a)
        np.testing.assert_allclose(a[ok], b[ok], rtol=0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("seed", range(24))
def test_fast_core_matches_reference(seed: int) -> None:
    reqs, cfg, model, tight = _scenario(seed)
    ref = reference_simulate(reqs, cfg, model)
    fast = simulate(reqs, cfg, model)
    _assert_same(fast, ref)
    assert not np.isnan(fast.done_s).any()


def test_randomized_scenarios_include_heavy_preemption() -> None:
    """The exactness test is only meaningful if the tight scenarios really preempt."""
    counts = []
    for seed in range(0, 24, 3):
        reqs, cfg, model, tight = _scenario(seed)
        assert tight
        counts.append(reference_simulate(reqs, cfg, model).total_preemptions)
    assert sum(c >= 15 for c in counts) >= 6, counts


@pytest.mark.parametrize("seed", range(6))
def test_speculative_decoding_matches_reference(seed: int) -> None:
    reqs, cfg, model, _ = _scenario(100 + seed)
    k = 1 + seed % 4
    cfg = EngineConfig(
        kv_blocks=cfg.kv_blocks + len(reqs), block_size=cfg.block_size,
        max_num_seqs=cfg.max_num_seqs,
        max_num_batched_tokens=max(cfg.max_num_batched_tokens, cfg.max_num_seqs * (1 + k)),
        num_speculative_tokens=k, acceptance=0.7, seed=seed,
    )
    _assert_same(simulate(reqs, cfg, model), reference_simulate(reqs, cfg, model))


def test_speculation_shortens_decode() -> None:
    reqs = [SimRequest(0.0, 10, 400)]
    model = LinearStepTime(c_step=0.01)
    plain = simulate(reqs, EngineConfig(kv_blocks=100), model)
    spec = simulate(reqs, EngineConfig(kv_blocks=100, num_speculative_tokens=3,
                                       acceptance=0.7), model)
    assert spec.steps < 0.6 * plain.steps


def test_sampler_ticks_do_not_change_the_schedule() -> None:
    reqs, cfg, model, _ = _scenario(3)
    plain = simulate(reqs, cfg, model)
    ticked = simulate(reqs, cfg, model, sample_interval_s=0.05)
    _assert_same(ticked, plain)
    times = [s[0] for s in ticked.samples]
    assert times == sorted(times) and len(times) > 10
    assert all(0.0 <= s[3] <= 1.0 for s in ticked.samples)
    assert ticked.samples[-1][4] == plain.total_preemptions


def test_decode_only_closed_form() -> None:
    """One request alone: prefill step + (O-1) decode steps of c_step + c_kv*context."""
    model = LinearStepTime(c_step=0.01, c_kv=1e-5, c_prefill=1e-4)
    res = simulate([SimRequest(0.0, 100, 50)], EngineConfig(kv_blocks=10), model)
    expected = 0.01 + 100 * 1e-4 + sum(0.01 + 1e-5 * (100 + g) for g in range(1, 50))
    assert res.steps == 50
    assert res.done_s[0] == pytest.approx(expected, abs=1e-12)


def test_request_larger_than_cache_is_refused() -> None:
    with pytest.raises(ValueError, match="kv_blocks"):
        simulate([SimRequest(0.0, 100, 100)], EngineConfig(kv_blocks=1),
                 LinearStepTime(c_step=0.01))
