"""run_analyses: single-run analyses per run, multi-run ones on the set."""

from __future__ import annotations

import dataclasses
import json

import pytest

from reasonperf.analysis.base import ANALYSES
from reasonperf.analysis.registry_all import MULTI_RUN, run_analyses
from reasonperf.errors import UsageError
from tests.test_analysis_data import make_run, request, timeline_table


def _run(name: str, max_tokens: int, speed: float = 1.0):
    rows = [request(i, sent=0.0, e2e=(1.0 + i % 3) / speed, difficulty=str(1 + i % 3),
                    domain="math", correct=i % 2 == 0, problem_id=f"p{i}")
            for i in range(12)]
    timeline = timeline_table({"kv_cache_usage": ([0.0, 1.0, 2.0], [0.1, 0.5, 0.3])})
    spec = {"arrival": {"name": "batch"}, "sampling": {"max_tokens": max_tokens}}
    return make_run(rows, timeline=timeline, spec=spec, name=name)


def test_every_analysis_is_registered():
    assert set(ANALYSES.names()) == {"memory", "stragglers", "difficulty", "domain", "budget",
                                     "findings",
                                     "compare"}
    assert MULTI_RUN <= set(ANALYSES.names())


def test_single_run_analyses_run_per_run_and_multi_run_once():
    runs = [_run("a", 256), _run("b", 512, speed=2.0)]
    results = run_analyses(runs)
    by_name: dict[str, list] = {}
    for r in results:
        by_name.setdefault(r.name, []).append(r)
    for name in ("memory", "stragglers", "difficulty", "domain"):
        assert [r.numbers["run"] for r in by_name[name]] == ["a", "b"]
        assert by_name[name][1].title.endswith("(b)")
        assert all(r.skipped is None for r in by_name[name])
    assert len(by_name["compare"]) == len(by_name["budget"]) == 1
    # one batch each: a batch shares its fate, so batch mode gives no latency CI, no verdict
    assert by_name["compare"][0].numbers["comparisons"][0]["overall"].startswith("speed n/a")
    assert by_name["compare"][0].tables  # the CLI's table is also part of the result
    assert by_name["budget"][0].skipped is None
    for r in results:  # the report stores results as JSON: strict, no NaN
        json.dumps(dataclasses.asdict(r), allow_nan=False)


def test_one_run_skips_the_multi_run_analyses():
    results = run_analyses([_run("a", 256)], ["compare", "budget", "memory"])
    assert [r.name for r in results] == ["compare", "budget", "memory"]
    assert results[0].skipped and results[1].skipped
    assert results[2].skipped is None and results[2].title == "KV-cache memory over time"


def test_unknown_analysis_name_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown analysis 'memry'"):
        run_analyses([_run("a", 256)], ["memry"])
