"""The findings table: each verdict computed from stored runs, both ways, and "not
measurable" when the runs lack what a finding needs."""

from __future__ import annotations

import numpy as np

from reasonperf.analysis.base import AnalysisResult
from reasonperf.analysis.findings import (
    FAILS,
    HOLDS,
    UNMEASURABLE,
    analyze_findings,
    arm_rows,
    block_bootstrap,
    findings_rows,
)
from reasonperf.analysis.registry_all import run_analyses
from tests.conftest import run_cli
from tests.test_analysis_data import make_run, request, timeline_table

BATCH = {"arrival": {"name": "batch", "batch_size": 8}}


def _kv(level: float, swing: float, n: int = 240, seed: int = 0) -> tuple[list[float], list[float]]:
    """A KV-usage series: level + a sawtooth of amplitude ``swing`` (batches fill the
    cache, then it drops) + a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 0.5
    saw = (np.arange(n) % 30) / 29.0
    v = np.clip(level + swing * (saw - 0.5) + rng.normal(0, 0.005, n), 0, 1)
    return t.tolist(), v.tolist()


def _rllm_batch_run(*, straggle: bool = True, kv=(0.4, 0.6), max_tokens: int = 512,
                    acc_by_domain=(("math", 0.9), ("knowledge", 0.5)), slope: float = 1.0,
                    name: str = "rllm", seed: int = 1):
    rng = np.random.default_rng(seed)
    rows, i = [], 0
    for b in range(12):  # 12 batches of 8
        start = b * 30.0
        for k in range(8):
            level = 1 + (i % 5)
            e2e = 2.0 + slope * level + rng.normal(0, 0.05)
            if straggle and k == 0:
                e2e *= 3.0
            domain, p = acc_by_domain[i % len(acc_by_domain)]
            rows.append(request(i, sent=start, scheduled=start, e2e=e2e, difficulty=str(level),
                                domain=domain, correct=bool(rng.random() < p),
                                problem_id=f"p{i % 48}", max_tokens=max_tokens,
                                reasoning_tokens=400, completion_tokens=450))
            i += 1
    spec = {**BATCH, "sampling": {"max_tokens": max_tokens}}
    return make_run(rows, spec=spec, name=name,
                    timeline=timeline_table({"kv_cache_usage": _kv(*kv, seed=seed)}))


def _llm_run(kv=(0.02, 0.005), acc_by_domain=(("math", 0.3), ("knowledge", 0.45)), seed: int = 2):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(96):
        domain, p = acc_by_domain[i % len(acc_by_domain)]
        rows.append(request(i, sent=(i // 8) * 5.0, scheduled=(i // 8) * 5.0, e2e=1.0,
                            difficulty=str(1 + i % 5), domain=domain,
                            correct=bool(rng.random() < p), problem_id=f"p{i % 48}",
                            reasoning_tokens=0, completion_tokens=30, answer_tokens=30))
    return make_run(rows, spec=BATCH, name="llm",
                    timeline=timeline_table({"kv_cache_usage": _kv(*kv, seed=seed)}))


def _verdicts(runs, arms=()):
    return {r.id: r.verdict for r in findings_rows(runs, arms)}


def test_thinker_vs_instruct_every_finding_holds():
    short = _rllm_batch_run(max_tokens=64, name="rllm-64", seed=3, acc_by_domain=(
        ("math", 0.3), ("knowledge", 0.2)))
    # a short budget truncates: mark most requests cut
    short.requests = short.requests.set_column(
        short.requests.schema.get_field_index("finish_reason"), "finish_reason",
        [["length"] * 80 + ["stop"] * 16])
    verdicts = _verdicts([_rllm_batch_run(), short, _llm_run()])
    assert verdicts == {"kv_level": HOLDS, "kv_swing": HOLDS, "stragglers": HOLDS,
                        "difficulty": HOLDS, "domain": HOLDS, "budget": HOLDS}


def test_findings_fail_when_the_runs_show_the_opposite():
    flat = _rllm_batch_run(straggle=False, kv=(0.02, 0.005), slope=0.0,
                           acc_by_domain=(("math", 0.3), ("knowledge", 0.45)))
    verdicts = _verdicts([flat, _llm_run(kv=(0.3, 0.5))])
    assert verdicts["kv_level"] == FAILS
    assert verdicts["kv_swing"] == FAILS
    assert verdicts["stragglers"] == FAILS
    assert verdicts["difficulty"] == FAILS
    assert verdicts["domain"] == FAILS


def test_not_measurable_says_what_is_missing():
    rows = {r.id: r for r in findings_rows([_llm_run()])}
    assert {r.verdict for r in rows.values()} == {UNMEASURABLE}
    assert "reasoning model" in rows["kv_level"].why
    lone = {r.id: r for r in findings_rows([_rllm_batch_run()])}
    assert lone["kv_level"].verdict == UNMEASURABLE and "non-reasoning" in lone["kv_level"].why
    assert lone["budget"].verdict == UNMEASURABLE and "budgets" in lone["budget"].why
    assert lone["stragglers"].verdict == HOLDS  # needs the RLLM's batches only
    no_kv = _rllm_batch_run()
    no_kv.timeline = no_kv.timeline.slice(0, 0)
    rows = {r.id: r for r in findings_rows([no_kv, _llm_run()])}
    assert rows["kv_level"].verdict == UNMEASURABLE and "samples" in rows["kv_level"].why


def test_block_bootstrap_widens_the_interval_of_an_autocorrelated_series():
    rng = np.random.default_rng(0)
    walk = np.cumsum(rng.normal(0, 1, 2000))  # strongly autocorrelated
    blocks = block_bootstrap(walk, lambda x: x.mean(axis=1), np.random.default_rng(1), 500)
    naive = np.array([walk[np.random.default_rng(k).integers(0, 2000, 2000)].mean()
                      for k in range(500)])
    assert blocks.std() > 3 * naive.std()


def test_arm_rows_take_compares_verdicts_and_the_studys_claim():
    def arm(title, overall):
        return AnalysisResult("compare", title, numbers={"comparisons": [{
            "run": "cand", "overall": overall,
            "metrics": [{"metric": "output_tps", "label": "output tok/s", "verdict": "faster"}]}]})

    rows = arm_rows([arm("Arms on quantization: awq against bf16", "faster, same accuracy"),
                     arm("Arms on prefix: on against off", "faster, same accuracy"),
                     arm("Arms on kv_dtype: fp8 against auto", "speed n/a, accuracy not compared"),
                     arm("Arms on arrival: gamma against batch", "slower, same accuracy")])
    assert [r.verdict for r in rows] == [HOLDS, FAILS, UNMEASURABLE, UNMEASURABLE]
    assert "quantization" in rows[0].reported and "no claim" in rows[3].reported


def test_findings_come_first_in_a_report_and_count_verdicts():
    results = run_analyses([_rllm_batch_run(), _llm_run()])
    assert results[0].name == "findings"
    result = analyze_findings([_rllm_batch_run(), _llm_run()])
    assert result.numbers["rllm_runs"] == 1 and result.numbers["llm_runs"] == 1
    assert result.tables[0].columns[:4] == ["finding", "the study reported", "measured here",
                                            "verdict"]


def test_cli_findings_on_a_fake_server_run(tmp_path):
    from reasonperf.config import load_run_spec
    from reasonperf.run import execute_run
    from tests.fake_server import FakeServer, Programme

    with FakeServer(Programme(ttft_s=0.01, itl_s=0.001, reasoning_tokens=20,
                              answer_tokens=5)) as srv:
        spec = load_run_spec({
            "name": "f", "out": str(tmp_path),
            "engine": {"kind": "external", "url": srv.base_url, "model": "fake-model"},
            "workload": {"name": "procedural", "limit": 8, "options": {"levels": [1, 3]}},
            "arrival": {"name": "batch", "batch_size": 4}, "grade": False})
        run_dir = execute_run(spec).run_dir
    res = run_cli("findings", str(tmp_path), "--json")
    assert res.returncode == 0, res.stderr
    assert '"not measurable"' in res.stdout and "non-reasoning" in res.stdout
    bad = run_cli("findings", str(run_dir / "nope"))
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
