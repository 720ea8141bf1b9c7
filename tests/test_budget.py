"""Thinking budgets (issue 14 item 2): the field each engine gets, the CLI's errors, and
budget adherence in summary.json against a fake server that honours or ignores a budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from reasonperf.client.budget import budget_body, budget_info, effective_budget
from reasonperf.config import load_run_spec
from reasonperf.errors import UsageError
from reasonperf.run import execute_run
from tests.conftest import run_cli
from tests.fake_server import FakeServer, Programme


def _spec(engine: dict, **sampling):
    return load_run_spec({"engine": engine, "sampling": {"max_tokens": 256, **sampling}})


EXTERNAL = {"kind": "external", "url": "http://127.0.0.1:9/v1"}


def test_each_engine_kind_gets_its_budget_field():
    assert budget_body(_spec(EXTERNAL, thinking_budget=64)) == {"thinking_token_budget": 64}
    assert budget_body(_spec(EXTERNAL, thinking_budget=64, budget_field="a.b")) == {
        "a": {"b": 64}}
    vllm = {"kind": "vllm", "reasoning_parser": "deepseek_r1"}
    assert budget_body(_spec(vllm, thinking_budget=8)) == {"thinking_token_budget": 8}
    sglang = {"kind": "sglang", "extra_args": ["--enable-strict-thinking"]}
    assert budget_body(_spec(sglang, thinking_budget=8)) == {
        "custom_params": {"thinking_budget": 8}}
    assert budget_body(_spec(EXTERNAL, reasoning_effort="low")) == {"reasoning_effort": "low"}
    assert budget_body(_spec(EXTERNAL)) == {}
    assert budget_info(_spec(EXTERNAL)) is None


@pytest.mark.parametrize("engine, sampling, words", [
    ({"kind": "vllm"}, {"thinking_budget": 8}, "--reasoning-parser"),
    ({"kind": "sglang"}, {"thinking_budget": 8}, "--enable-strict-thinking"),
    ({"kind": "vllm", "reasoning_parser": "x"}, {"thinking_budget": 8, "budget_field": "f"},
     "--budget-field"),
    (EXTERNAL, {"budget_field": "f"}, "--thinking-budget"),
    (EXTERNAL, {"answer_reserve": 256}, "--answer-reserve"),
])
def test_engines_without_a_budget_field_say_so(engine, sampling, words):
    with pytest.raises(UsageError, match=words):
        budget_info(_spec(engine, **sampling))


def test_answer_reserve_caps_the_budget():
    s = _spec(EXTERNAL, thinking_budget=200, answer_reserve=100).sampling
    assert effective_budget(s) == 156  # max_tokens 256 - 100 beats 200
    s = _spec(EXTERNAL, thinking_budget=50, answer_reserve=100).sampling
    assert effective_budget(s) == 50
    assert effective_budget(_spec(EXTERNAL, answer_reserve=56).sampling) == 200


def _run(tmp_path: Path, url: str, **sampling):
    spec = load_run_spec({
        "name": "budget", "out": str(tmp_path),
        "engine": {"kind": "external", "url": url, "model": "fake-model"},
        "workload": {"name": "procedural", "limit": 4},
        "arrival": {"name": "batch", "batch_size": 4},
        "sampling": {"max_tokens": 100, **sampling}, "grade": False,
    })
    return execute_run(spec)


def test_a_budget_the_server_honours_has_no_violation(tmp_path):
    prog = Programme(reasoning_tokens=30, answer_tokens=5, budget_field="thinking_token_budget")
    with FakeServer(prog) as srv:
        res = _run(tmp_path, srv.base_url, thinking_budget=10)
    b = res.summary["budget"]
    assert (b["budget"], b["field"], b["requests"]) == (10, "thinking_token_budget", 4)
    assert (b["violations"], b["worst_excess"], b["ended_in_thinking"], b["no_answer"]) == (
        0, 0, 0, 0)


def test_a_budget_the_server_ignores_shows_the_violations(tmp_path):
    prog = Programme(reasoning_tokens=30, answer_tokens=5)  # no budget field honoured
    with FakeServer(prog) as srv:
        res = _run(tmp_path, srv.base_url, thinking_budget=10, budget_field="thinking_budget")
    b = res.summary["budget"]
    assert (b["violations"], b["worst_excess"]) == (4, 20)
    assert len(b["violation_examples"]) == 4


def test_a_budget_that_eats_max_tokens_leaves_no_answer(tmp_path):
    prog = Programme(reasoning_tokens=30, answer_tokens=5)
    with FakeServer(prog) as srv:
        res = _run(tmp_path, srv.base_url, thinking_budget=40, max_tokens=20)
    b = res.summary["budget"]
    assert (b["ended_in_thinking"], b["no_answer"], b["violations"]) == (4, 4, 0)


def test_no_budget_no_block(tmp_path):
    with FakeServer(Programme(reasoning_tokens=3, answer_tokens=2)) as srv:
        res = _run(tmp_path, srv.base_url)
    assert res.summary["budget"] is None


def test_cli_errors_are_one_line_exit_2(tmp_path):
    r = run_cli("run", "--engine", "sglang", "--thinking-budget", "5", "--out", str(tmp_path))
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "--enable-strict-thinking" in r.stderr
    r = run_cli("run", "--endpoint", "http://127.0.0.1:9/v1", "--reasoning-effort", "huge",
                "--out", str(tmp_path))
    assert r.returncode == 2 and "reasoning_effort" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("run", "--endpoint", "http://127.0.0.1:9/v1", "--thinking-budget", "5",
                "--api", "completions", "--reasoning-effort", "low", "--out", str(tmp_path))
    assert r.returncode == 2 and "--reasoning-effort" in r.stderr
    assert not any(tmp_path.iterdir())  # nothing written


# ------------------------------------------------------------- thinking-budget curves

def _tb_run(budget: int, n_correct: int, ttfvt: float, tokens: int, violations: int = 0):
    from tests.test_analysis_data import make_run, request

    rows = [request(i, e2e=2 * ttfvt, ttfvt=ttfvt, correct=i < n_correct,
                    completion_tokens=tokens) for i in range(10)]
    spec = {"name": f"tb{budget}", "sampling": {"max_tokens": 512, "thinking_budget": budget},
            "arrival": {"name": "batch"}}
    run = make_run(rows, spec=spec, name=f"tb{budget}")
    run.summary = {"budget": {"violations": violations, "worst_excess": 3 * violations,
                              "no_answer": 0}}
    return run


def test_a_thinking_budget_sweep_is_keyed_by_the_budget_with_its_pareto_front():
    from reasonperf.analysis.budget import analyze_budget

    runs = [_tb_run(256, 6, 3.0, 200), _tb_run(64, 3, 1.0, 80, violations=2),
            _tb_run(128, 3, 2.0, 150),  # dominated by 64: same accuracy, slower, dearer
            _tb_run(512, 6, 4.0, 300)]  # dominated by 256
    result = analyze_budget(runs)  # max_tokens is the same everywhere: not skipped
    assert result.skipped is None and result.numbers["axis"] == "thinking_budget"
    (curve,) = result.numbers["curves"].values()
    assert [p["thinking_budget"] for p in curve] == [64, 128, 256, 512]
    assert [p["accuracy"] for p in curve] == pytest.approx([0.3, 0.3, 0.6, 0.6])
    assert [p["ttfvt_p50"] for p in curve] == pytest.approx([1.0, 2.0, 3.0, 4.0])
    assert [p["tokens_per_correct"] for p in curve] == pytest.approx(
        [800 / 3, 1500 / 3, 2000 / 6, 3000 / 6])
    assert [p["pareto"] for p in curve] == [True, False, True, False]
    assert list(result.numbers["pareto"].values()) == [[64, 256]]
    assert "Pareto" in result.tables[0].columns
    assert any("overran the budget in 1 of 4" in f for f in result.findings)


def test_ungraded_runs_have_no_pareto_verdict():
    from reasonperf.analysis.thinking_budget import mark_pareto

    pts = [{"accuracy": None, "ttfvt_p50": 1.0, "tokens_per_correct": None},
           {"accuracy": 0.5, "ttfvt_p50": 1.0, "tokens_per_correct": 10.0}]
    mark_pareto(pts)
    assert [p["pareto"] for p in pts] == [None, True]


def test_thinking_budget_is_a_study_axis():
    from reasonperf.study.spec import resolve_path

    assert resolve_path("thinking_budget") == "sampling.thinking_budget"
    assert resolve_path("answer_reserve") == "sampling.answer_reserve"


def test_the_servers_reasoning_count_is_judged_and_the_clients_kept_beside():
    from reasonperf.metrics.budget import budget_summary
    from tests.test_analysis_data import request, requests_table

    # vLLM + deepseek_r1 as measured: the server counts 5, the client 6 (the <think> it
    # generated); a third request has no server count and is judged on the client's
    rows = [request(0, reasoning_tokens=6, usage_reasoning_tokens=5),
            request(1, reasoning_tokens=9, usage_reasoning_tokens=8),
            request(2, reasoning_tokens=7),
            request(3, reasoning_tokens=None, status="ok")]
    b = budget_summary(requests_table(rows), 5)
    assert b["count_source"] == {"server": 2, "client": 1}
    assert (b["violations"], b["worst_excess"], b["client_violations"]) == (2, 3, 3)
    assert b["violation_examples"] == ["req-1", "req-2"]
    assert b["reasoning_unknown"] == 1


def test_the_run_prints_its_budget_adherence(tmp_path):
    with FakeServer(Programme(itl_s=0.0, reasoning_tokens=30, answer_tokens=5)) as srv:
        r = run_cli("run", "--endpoint", srv.base_url, "--model", "fake-model", "--limit", "2",
                    "--no-grade", "--thinking-budget", "10", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "thinking budget 10 (thinking_token_budget): 2 of 2 over it (worst +20)" in " ".join(
        r.stdout.split())


def test_the_thinking_budget_study_expands_into_one_engine_group():
    from reasonperf.study.expand import plan_study

    path = Path(__file__).resolve().parents[1] / "studies" / "thinking-budget.yaml"
    for profile in (None, "cpu"):
        plan = plan_study(path, profile=profile)
        budgets = [c.spec.sampling.thinking_budget for c in plan.cells]
        assert budgets == ([256, 1024, 4096, 8192] if profile is None else [4, 16, 64])
        assert len(plan.groups) == 1  # the budget is per request: one engine start
        for cell in plan.cells:
            assert budget_info(cell.spec)["field"] == "thinking_token_budget"
