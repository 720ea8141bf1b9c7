"""The token check compares sources that can disagree (issue 9, item 2)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from reasonperf.metrics.token_check import token_check
from reasonperf.records import REQUEST_SCHEMA, RequestRecord


def _table(*rows: dict[str, Any]) -> pa.Table:
    records = [RequestRecord(request_id=f"r{i}", run_id="x", dataset="d", problem_id=f"p{i}",
                             sample_index=0, **row).to_dict() for i, row in enumerate(rows)]
    return pa.Table.from_pylist(records, schema=REQUEST_SCHEMA)


CONSISTENT = {"completion_tokens": 50, "reasoning_tokens": 30, "answer_tokens": 20,
              "token_count_source": "continuous_usage", "usage_completion_tokens": 50,
              "chunk_tokens_sum": 50, "usage_reasoning_tokens": 30}


def test_consistent_sources_pass_and_say_what_was_checked() -> None:
    chk = token_check(_table(CONSISTENT, CONSISTENT))
    assert chk["mismatches"] == 0 and chk["checked"] == 2
    assert chk["comparisons"]["chunk_sum_vs_usage"] == {"checked": 2, "mismatches": 0}
    assert chk["comparisons"]["usage_reasoning_vs_chunks"] == {"checked": 2, "mismatches": 0}


def test_chunk_sum_against_final_usage_can_fail() -> None:
    drift = {**CONSISTENT, "usage_completion_tokens": 52, "completion_tokens": 52,
             "token_count_source": "usage_details", "answer_tokens": 22}
    chk = token_check(_table(CONSISTENT, drift))
    assert chk["mismatches"] == 1
    assert chk["comparisons"]["chunk_sum_vs_usage"]["mismatches"] == 1
    (ex,) = chk["examples"]
    assert ex == {"request_id": "r1", "check": "chunk_sum_vs_usage", "client": 50, "server": 52}


def test_server_reasoning_count_against_counted_reasoning_can_fail() -> None:
    # within 2 tokens: the think tags, which a server's count may leave out
    tags = {**CONSISTENT, "usage_reasoning_tokens": 28}
    off = {**CONSISTENT, "usage_reasoning_tokens": 25}
    chk = token_check(_table(tags, off))
    assert chk["comparisons"]["usage_reasoning_vs_chunks"] == {"checked": 2, "mismatches": 1}
    assert chk["examples"][0]["check"] == "usage_reasoning_vs_chunks"


def test_nothing_comparable_is_not_ok_but_unchecked() -> None:
    only_usage = {"completion_tokens": 50, "reasoning_tokens": 30, "answer_tokens": 20,
                  "token_count_source": "chars", "usage_completion_tokens": 50}
    chk = token_check(_table(only_usage))
    assert chk["checked"] == 0 and chk["mismatches"] == 0
    assert chk["comparisons"]["chunk_sum_vs_usage"]["checked"] == 0


def test_a_table_without_the_new_columns_checks_nothing() -> None:
    old = pa.table({"request_id": ["a"], "completion_tokens": [5], "reasoning_tokens": [2],
                    "answer_tokens": [3]})
    assert token_check(old)["checked"] == 0


def test_a_run_against_a_server_whose_final_usage_disagrees_reports_it(tmp_path) -> None:
    from reasonperf.config import load_run_spec
    from reasonperf.run import execute_run
    from tests.fake_server import FakeServer, Programme

    with FakeServer(Programme(final_usage_skew=3)) as srv:
        res = execute_run(load_run_spec({
            "name": "skew", "out": str(tmp_path),
            "engine": {"kind": "external", "url": srv.base_url, "model": "fake-model"},
            "workload": {"name": "procedural", "limit": 4},
            "arrival": {"name": "batch", "batch_size": 4}, "grade": False,
        }))
    chk = res.summary["tokens"]["check"]
    assert chk["checked"] == 4 and chk["mismatches"] == 4, chk
    assert chk["examples"][0]["client"] + 3 == chk["examples"][0]["server"]
    assert "chars" in res.summary["tokens"]["count_source"]  # the chunk counts were not used
