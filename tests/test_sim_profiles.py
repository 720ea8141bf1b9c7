"""The roofline prior: datasheet numbers and a HF config.json, checked against the design
arithmetic (Qwen2.5-7B on an H100: 7.62 B parameters, 56 KiB of KV per token)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasonperf.sim.profiles import ModelShape, hardware, kv_capacity_tokens, roofline_prior
from tests.conftest import run_cli

QWEN7B = {"num_hidden_layers": 28, "hidden_size": 3584, "num_attention_heads": 28,
          "num_key_value_heads": 4, "intermediate_size": 18944, "vocab_size": 152064}


@pytest.fixture
def qwen_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(QWEN7B))
    return path


def test_shape_and_roofline_numbers(qwen_config: Path) -> None:
    shape = ModelShape.from_config(qwen_config)
    assert shape.params == pytest.approx(7.62e9, rel=0.01)
    assert shape.kv_bytes_per_token() == 56 * 1024
    prior = roofline_prior(hardware("h100"), shape)
    assert prior.c_step == pytest.approx(4.55e-3 + 126e-6, rel=0.02)  # weights / 3.35 TB/s
    assert prior.c_kv == pytest.approx(56 * 1024 / 3.35e12, rel=1e-6)
    assert roofline_prior(hardware("h100"), shape, kv_dtype="fp8").c_kv == prior.c_kv / 2
    assert kv_capacity_tokens(hardware("h100"), shape) == pytest.approx(887_000, rel=0.01)


def test_simulate_from_the_prior_without_a_run(qwen_config: Path, tmp_path: Path) -> None:
    from tests.test_sim_cli import AMPLE, _requests, make_run

    run = make_run(tmp_path, "lengths", _requests(20, 2.0, 3), AMPLE)
    out = tmp_path / "prior"
    proc = run_cli("simulate", "--gpu", "h100", "--model-config", str(qwen_config),
                   "--workload", str(run), "--arrival", "poisson", "--rate", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["simulation"]["engine"]["max_num_seqs"] == 1024
    assert info["simulation"]["step_time"]["c_kv"] == pytest.approx(56 * 1024 / 3.35e12)


def test_unknown_gpu_and_missing_calibration_are_usage_errors(qwen_config: Path) -> None:
    proc = run_cli("simulate", "--gpu", "h900", "--model-config", str(qwen_config),
                   "--workload", ".", "--out", "x")
    assert proc.returncode == 2 and "--gpu" in proc.stderr
    proc = run_cli("simulate", "--workload", ".", "--out", "x")
    assert proc.returncode == 2 and "--calibration" in proc.stderr


def test_acceptance_from_the_engines_rate_round_trips() -> None:
    """The per-position alpha the simulator draws with reproduces the engine's
    accepted/draft rate (checked by simulating many verify steps)."""
    import random

    from reasonperf.sim.calibrate import per_position_acceptance
    from reasonperf.sim.core import accepted_drafts

    for k, rate in ((1, 0.6), (3, 0.45), (5, 0.3)):
        alpha = per_position_acceptance(rate, k)
        rng = random.Random(0)
        got = sum(accepted_drafts(alpha, rng, k) for _ in range(40_000)) / (40_000 * k)
        assert got == pytest.approx(rate, abs=0.01)
