"""tiny-thinker and tiny-instruct on the real vLLM CPU engine (reduced sizes).

The full measurement (50 problems per level) is bench/thinker_behaviour.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from statistics import median

import pyarrow.parquet as pq
import pytest

from reasonperf.config import load_run_spec
from reasonperf.engines import EngineSpec, LaunchedEngine
from reasonperf.run import execute_run
from tests.conftest_engine import _require_vllm, _serve

pytestmark = pytest.mark.engine


def _shipped(name: str) -> Path:
    from reasonperf.engines.models import shipped_models

    return shipped_models()[name]


@pytest.fixture()  # one test each: stopped before the next engine starts
def vllm_thinker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchedEngine]:
    _require_vllm()
    spec = EngineSpec(kind="vllm", model=str(_shipped("tiny-thinker")), max_model_len=1024,
                      reasoning_parser="deepseek_r1")
    yield from _serve(spec, tmp_path_factory.mktemp("vllm-thinker"))


@pytest.fixture()  # one test each: stopped before the next engine starts
def vllm_instruct(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchedEngine]:
    _require_vllm()
    spec = EngineSpec(kind="vllm", model=str(_shipped("tiny-instruct")), max_model_len=1024)
    yield from _serve(spec, tmp_path_factory.mktemp("vllm-instruct"))


def _run(tmp_path: Path, engine: LaunchedEngine, levels: list[int], n: int) -> list[dict]:
    spec = load_run_spec({
        "name": "thinker",
        "out": str(tmp_path),
        "engine": {"kind": "external", "url": engine.base_url, "metrics_url": engine.metrics_url,
                   "model": engine.served_model},
        "workload": {"name": "procedural", "limit": n, "options": {"levels": levels}},
        "arrival": {"name": "batch", "batch_size": n},
        "sampling": {"max_tokens": 900, "temperature": 0.6},
        "sample_interval_s": 0.5,
    })
    res = execute_run(spec)
    rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    assert len(rows) == n and all(r["status"] == "ok" for r in rows)
    return rows


def test_thinker_reasons_longer_at_higher_levels_and_the_parser_splits_it(tmp_path, vllm_thinker):
    rows = _run(tmp_path, vllm_thinker, [1, 5], 16)
    by_level = {lvl: [r for r in rows if r["difficulty"] == str(lvl)] for lvl in (1, 5)}
    for r in rows:
        assert r["reasoning_tokens"] > 0, r["reasoning_text"]
        assert "<think>" not in (r["answer_text"] or "") and "</think>" not in (r["answer_text"] or "")
    closed = [r for r in rows if r["finish_reason"] == "stop"]
    assert sum("\\boxed{" in (r["answer_text"] or "") for r in closed) >= 0.9 * len(closed)
    med = {lvl: median(r["reasoning_tokens"] for r in rs) for lvl, rs in by_level.items()}
    assert med[5] >= 3 * med[1], med


def test_instruct_answers_in_one_short_line_without_thinking(tmp_path, vllm_instruct):
    rows = _run(tmp_path, vllm_instruct, [1, 3], 8)
    for r in rows:
        assert r["finish_reason"] == "stop"
        assert not r["reasoning_tokens"] and not r["reasoning_text"]
        assert r["completion_tokens"] <= 16
        assert "\\boxed{" in r["answer_text"] and "\n" not in r["answer_text"].strip()
