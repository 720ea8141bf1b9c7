"""Length replay on the real vLLM CPU engine (issue 14 item 3): tiny-reasoner would stop
after about 40 tokens; forced lengths (min_tokens = max_tokens, ignore_eos) must make
every completion its target, and the replayed lengths reproduce the fitted ones."""

from __future__ import annotations

import orjson
import pyarrow.parquet as pq
import pytest
from scipy import stats

from reasonperf.config import load_run_spec
from reasonperf.run import execute_run
from reasonperf.workload.lengths import fit_lengths
from tests.test_replay import _synthetic_run

pytestmark = pytest.mark.engine


def test_replay_forces_the_fitted_lengths_on_vllm(tmp_path, vllm_tiny_reasoner):
    engine = vllm_tiny_reasoner
    run = _synthetic_run(n=120)
    lengths = tmp_path / "lengths.json"
    lengths.write_bytes(orjson.dumps(fit_lengths([run])))
    original = [r["completion_tokens"] for r in run.requests.to_pylist()
                if r["status"] == "ok" and r["reasoning_tokens"] is not None]
    spec = load_run_spec({
        "name": "replay", "out": str(tmp_path / "runs"),
        "engine": {"kind": "external", "url": engine.base_url,
                   "metrics_url": engine.metrics_url, "model": engine.served_model},
        "workload": {"name": f"replay:{lengths}", "options": {"n": 120}},
        "arrival": {"name": "concurrency", "concurrency": 16},
        "sampling": {"max_tokens": None}, "grade": False,
    })
    res = execute_run(spec)
    rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    rep = res.summary["replay"]
    print("replay:", rep)
    assert [r["status"] for r in rows] == ["ok"] * 120
    assert rep["mismatches"] == 0, rep["examples"]
    replayed = [r["completion_tokens"] for r in rows]
    p = stats.ks_2samp(replayed, original).pvalue
    print("KS p:", p)
    assert p > 0.05
