"""Issue 9, items 1, 2 and 5 on the real vLLM CPU engine: cut-off thinking under a chat
template that pre-opens <think> (no reasoning parser), the token check, and per-chunk
counts only when the engine really sends them per chunk.

The engine is launched by us (a LaunchedEngine handed to execute_run, as a study does), so
``--think-open auto`` reads the chat template and the tokenizer fallback is the model's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from reasonperf.client.tokenizer import load_tokenizer
from reasonperf.config import load_run_spec
from reasonperf.engines import EngineSpec, LaunchedEngine, make_engine
from reasonperf.engines.models import ANSWER_TEXT, REASONING_TEXT
from reasonperf.run import RunResult, execute_run

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def vllm_open_think(engine_test_models: dict[str, Path],
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[LaunchedEngine]:
    """vLLM CPU serving tiny-reasoner-open (template ends in <think>), no reasoning parser."""
    pytest.importorskip("vllm")
    spec = EngineSpec(kind="vllm", model=str(engine_test_models["tiny-reasoner-open"]),
                      max_model_len=1024)
    engine = make_engine(spec)
    assert isinstance(engine, LaunchedEngine)
    engine.start(tmp_path_factory.mktemp("vllm-open-think"))
    try:
        yield engine
    finally:
        engine.stop()


def _run(tmp_path: Path, served: LaunchedEngine, name: str, **over: Any) -> RunResult:
    data = {
        "name": name, "out": str(tmp_path),
        "engine": {"kind": "vllm", "model": served.model},
        "workload": {"name": "procedural", "limit": 4},
        "arrival": {"name": "batch", "batch_size": 4},
        "sampling": {"max_tokens": 200, "temperature": 0.0},
        "grade": False, **over,
    }
    return execute_run(load_run_spec(data), engine=served)


def _rows(res: RunResult, table: str = "requests") -> list[dict[str, Any]]:
    return pq.read_table(res.run_dir / f"{table}.parquet").to_pylist()


def test_cut_inside_pre_opened_thinking_is_reasoning_not_answer(tmp_path, vllm_open_think):
    res = _run(tmp_path, vllm_open_think, "cut", sampling={"max_tokens": 10,
                                                           "temperature": 0.0})
    info = json.loads((res.run_dir / "run.json").read_text())
    assert info["think_open"]["setting"] == "auto"
    assert info["think_open"]["prompt_opens_think"] is True, info["think_open"]
    assert "chat template" in info["think_open"]["evidence"]
    assert info["tokenizer"]["origin"] == "launched engine's model"
    rows = _rows(res)
    assert len(rows) == 4
    for r in rows:
        assert (r["status"], r["finish_reason"]) == ("ok", "length")
        assert r["completion_tokens"] == 10 and r["reasoning_tokens"] == 10
        assert r["answer_tokens"] == 0 and r["answer_text"] == ""
        assert REASONING_TEXT.startswith(r["reasoning_text"].strip())
        assert r["first_token_s"] is not None and r["first_visible_s"] is None
        assert r["thinking_truncated"] is True and r["think_open"] is True
    assert res.summary["latency"]["ttfvt"]["count"] == 0  # no visible token: TTFVT missing
    chk = res.summary["tokens"]["check"]
    assert (chk["checked"], chk["mismatches"]) == (4, 0), chk
    # --think-open no reads the same stream as main did before issue 9: all answer
    old = _run(tmp_path, vllm_open_think, "cut-no", think_open="no",
               sampling={"max_tokens": 10, "temperature": 0.0})
    for r in _rows(old):
        assert r["reasoning_tokens"] == 0 and r["answer_tokens"] == 10
        assert r["first_visible_s"] == r["first_token_s"] and r["thinking_truncated"] is False


def test_uncut_split_and_token_check_on_the_engine(tmp_path, vllm_open_think):
    res = _run(tmp_path, vllm_open_think, "uncut")
    assert json.loads((res.run_dir / "run.json").read_text())["continuous_usage"] is True
    tok = load_tokenizer(vllm_open_think.model)
    n_reasoning = tok.count(REASONING_TEXT)
    n_answer = tok.count(ANSWER_TEXT)
    rows = _rows(res)
    for r in rows:
        assert (r["status"], r["finish_reason"]) == ("ok", "stop")
        assert r["reasoning_text"].strip() == REASONING_TEXT
        assert r["answer_text"].strip() == ANSWER_TEXT
        assert r["think_open"] is True and r["thinking_truncated"] is False
        # the answer never comes before the thinking (one network read can carry both
        # when a loaded CPU delays the stream: then they share a timestamp)
        assert r["first_visible_s"] >= r["first_token_s"]
        # generated: the reasoning, </think> (counted as thinking), the answer, EOS
        assert r["token_count_source"] == "continuous_usage"
        assert (r["reasoning_tokens"], r["answer_tokens"]) == (n_reasoning + 1, n_answer + 1)
        assert r["chunk_tokens_sum"] == r["usage_completion_tokens"] == r["completion_tokens"]
    chunks = _rows(res, "chunks")
    assert all(c["n_tokens"] is not None for c in chunks)  # vLLM counts every chunk
    chk = res.summary["tokens"]["check"]
    assert (chk["checked"], chk["mismatches"]) == (4, 0), chk
    assert chk["comparisons"]["chunk_sum_vs_usage"]["checked"] == 4


def test_without_continuous_usage_no_chunk_has_a_count(tmp_path, vllm_open_think):
    """Item 5 on the engine: usage on the final chunk only, so no chunk gets a count, and
    the split comes from the launched engine's own tokenizer (not the character share)."""
    res = _run(tmp_path, vllm_open_think, "final-usage-only", continuous_usage="off")
    tok = load_tokenizer(vllm_open_think.model)
    for r in _rows(res):
        assert r["chunk_tokens_sum"] is None and r["usage_completion_tokens"] is not None
        assert r["token_count_source"] == "tokenizer"
        assert r["reasoning_tokens"] == tok.count(r["reasoning_text"])
        assert r["reasoning_tokens"] + r["answer_tokens"] == r["usage_completion_tokens"]
    assert {c["n_tokens"] for c in _rows(res, "chunks")} == {None}
    assert res.summary["tokens"]["check"]["checked"] == 0  # nothing to compare: not "ok"


def test_reasoning_parser_cut_and_its_reasoning_count(tmp_path, vllm_tiny_reasoner):
    """With --reasoning-parser deepseek_r1 the server splits the reasoning and reports
    usage reasoning_tokens: the cut run is thinking_truncated; the uncut run's server
    reasoning count agrees with the counted reasoning deltas."""
    cut = _run(tmp_path, vllm_tiny_reasoner, "parser-cut",
               engine={"kind": "vllm", "model": vllm_tiny_reasoner.model,
                       "reasoning_parser": "deepseek_r1"},
               sampling={"max_tokens": 10, "temperature": 0.0})
    for r in _rows(cut):
        assert r["finish_reason"] == "length" and r["answer_text"] == ""
        assert r["first_visible_s"] is None and r["thinking_truncated"] is True
        assert r["think_open"] is None  # the server split it
    full = _run(tmp_path, vllm_tiny_reasoner, "parser-full",
                engine={"kind": "vllm", "model": vllm_tiny_reasoner.model,
                        "reasoning_parser": "deepseek_r1"})
    for r in _rows(full):
        assert r["usage_reasoning_tokens"] is not None and r["thinking_truncated"] is False
    chk = full.summary["tokens"]["check"]
    assert chk["comparisons"]["usage_reasoning_vs_chunks"] == {"checked": 4, "mismatches": 0}, chk
    assert chk["mismatches"] == 0
