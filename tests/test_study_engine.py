"""Studies on the real vLLM CPU engine: the paper specs' cpu profiles (pilot, budget,
prefix caching), the quickstart with --limit, and an engine that fails to start.

Engine starts cost 30-50 s here, so the studies share one EngineSlots that keeps engines
running across them and lends them the session's tiny-model engines wherever a cell's
engine spec is the same; each test asserts how many engines it started itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from reasonperf.engines import LaunchedEngine
from reasonperf.study import EngineSlots, StudyPlan, plan_study, run_study
from tests.conftest import run_cli

pytestmark = pytest.mark.engine

STUDIES = Path(__file__).resolve().parents[1] / "studies"


@pytest.fixture(scope="module")
def slots(vllm_tiny_reasoner: LaunchedEngine, vllm_tiny_random: LaunchedEngine
          ) -> Iterator[EngineSlots]:
    shared = EngineSlots(keep=True)
    for name, engine in (("tiny-reasoner", vllm_tiny_reasoner),
                         ("tiny-random", vllm_tiny_random)):
        shared.adopt(engine.spec.model_copy(update={"model": f"builtin:{name}"}), engine)
    yield shared
    shared.close()


def _run(plan: StudyPlan, slots: EngineSlots) -> tuple[dict, float]:
    t0 = time.monotonic()
    result = run_study(plan, engines=slots)
    assert not result.interrupted
    index = orjson.loads(result.index_path.read_bytes())
    assert result.report_path is not None and result.report_path.exists(), index
    return index, time.monotonic() - t0


def _all_ok(index: dict) -> None:
    bad = {c["id"]: c.get("error") for c in index["cells"] if c["status"] != "ok"}
    assert not bad, bad
    for cell in index["cells"]:
        assert cell["summary"]["ok"] == cell["summary"]["requests"] > 0


def test_pilot_cpu_profile(tmp_path, slots):
    plan = plan_study(STUDIES / "paper" / "pilot.yaml", profile="cpu", out=tmp_path / "pilot")
    index, wall = _run(plan, slots)
    print(f"pilot --profile cpu: {wall:.1f} s")
    _all_ok(index)
    assert index["sessions"][-1]["engine_starts"] == 0  # both arms ran on the shared engines
    assert len(index["cells"]) == 4
    html = (tmp_path / "pilot" / "report.html").read_text()
    assert "LLM vs RLLM on arm: llm against rllm" in html
    # the RLLM arm reasons, the LLM arm never does
    for cell in index["cells"]:
        summary = orjson.loads((tmp_path / "pilot" / cell["id"] / "summary.json").read_bytes())
        reasoning = summary["tokens"]["reasoning"] or 0
        assert (reasoning > 0) == (cell["levels"]["arm"] == "rllm"), cell["id"]


def test_budget_cpu_profile(tmp_path, slots):
    plan = plan_study(STUDIES / "paper" / "budget.yaml", profile="cpu", out=tmp_path / "budget")
    index, wall = _run(plan, slots)
    print(f"budget --profile cpu: {wall:.1f} s")
    _all_ok(index)
    assert index["sessions"][-1]["engine_starts"] == 0
    trunc = {}
    for cell in index["cells"]:
        summary = orjson.loads((tmp_path / "budget" / cell["id"] / "summary.json").read_bytes())
        trunc[cell["settings"]["max_tokens"]] = summary["requests"]["finish_reasons"]
    # the scripted reasoner needs more than 32 tokens to finish, and fewer than 64
    assert trunc[32] == {"length": 4} and trunc[64] == {"stop": 4}
    assert "Token budget (max_tokens) curves" in (tmp_path / "budget" / "report.html").read_text()


def test_prefix_caching_cpu_profile(tmp_path, slots):
    plan = plan_study(STUDIES / "paper" / "prefix-caching.yaml", profile="cpu",
                      out=tmp_path / "prefix")
    index, wall = _run(plan, slots)
    print(f"prefix-caching --profile cpu: {wall:.1f} s")
    _all_ok(index)
    assert index["sessions"][-1]["engine_starts"] == 2  # on and off: two engines
    flags = []
    for cell in index["cells"]:
        run = orjson.loads((tmp_path / "prefix" / cell["id"] / "run.json").read_bytes())
        flags.append(next(a for a in run["engine"]["command"] if "prefix-caching" in a))
    assert flags == ["--enable-prefix-caching", "--no-enable-prefix-caching"]


def test_an_engine_that_fails_to_start_is_recorded_and_the_study_goes_on(tmp_path, slots):
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "name: bad-model\n"
        "base:\n"
        "  engine: {kind: vllm, max_model_len: 4096, startup_timeout_s: 300}\n"
        "  workload: {name: procedural, limit: 2}\n"
        "  sampling: {max_tokens: 16}\n"
        "matrix:\n"
        "  arm:\n"
        "    missing: {engine: {model: /nonexistent/reasonperf-model}}\n"
        "    good: {engine: {model: 'builtin:tiny-random'}}\n"
    )
    plan = plan_study(spec, out=tmp_path / "bad")
    t0 = time.monotonic()
    result = run_study(plan, engines=slots)
    print(f"bad model path study: {time.monotonic() - t0:.1f} s")
    missing, good = result.cells
    assert missing["status"] == "failed"
    assert missing["error"].startswith("engine failed to start: vllm failed to start")
    assert "/nonexistent/reasonperf-model" in missing["error"]
    assert missing["log_tail"], "the engine's log tail is recorded"
    assert good["status"] == "ok"
    cell_json = orjson.loads((tmp_path / "bad" / missing["id"] / "cell.json").read_bytes())
    assert cell_json["status"] == "failed" and cell_json["log_tail"] == missing["log_tail"]


def test_quickstart_with_limit_runs_end_to_end(tmp_path):
    out = tmp_path / "quickstart"
    t0 = time.monotonic()
    proc = run_cli("study", str(STUDIES / "quickstart.yaml"), "--limit", "2", "--out", str(out),
                   timeout=900)
    print(f"quickstart --limit 2: {time.monotonic() - t0:.1f} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"report: {out / 'report.html'}" in proc.stdout
    index = orjson.loads((out / "study.json").read_bytes())
    _all_ok(index)
    assert len(index["cells"]) == 4 and index["sessions"][-1]["engine_starts"] == 2
    html = (out / "report.html").read_text()
    assert "LLM vs RLLM on arm: instruct against thinker" in html and "Token budget" in html
    # the findings table comes first, each finding with a verdict
    assert html.index("Findings of the study") < html.index("LLM vs RLLM on arm")
    findings = run_cli("findings", str(out), "--json")
    assert findings.returncode == 0, findings.stderr
    rows = {r["id"]: r for r in json.loads(findings.stdout)}
    assert {"kv_level", "kv_swing", "stragglers", "difficulty", "budget"} <= set(rows)
    assert all(r["verdict"] in ("holds", "does not hold", "not measurable") for r in rows.values())


def _prefix_hits(run_dir: Path) -> tuple[float, float]:
    """(hits, queries): prefix-cache tokens over the cell, from the engine's own counters."""
    import pyarrow.parquet as pq

    from reasonperf.telemetry import names

    rows = pq.read_table(run_dir / "timeline.parquet").to_pylist()
    out = []
    for metric in (names.PREFIX_CACHE_HITS_TOTAL, names.PREFIX_CACHE_QUERIES_TOTAL):
        values = [r["value"] for r in sorted(rows, key=lambda r: r["t_s"]) if r["metric"] == metric]
        assert values, f"no {metric} in {run_dir}"
        out.append(values[-1] - values[0])
    return out[0], out[1]


@pytest.fixture
def random_slots(vllm_tiny_random: LaunchedEngine) -> Iterator[EngineSlots]:
    """Only the tiny-random engine (one engine start when run alone)."""
    shared = EngineSlots(keep=True)
    shared.adopt(vllm_tiny_random.spec.model_copy(update={"model": "builtin:tiny-random"}),
                 vllm_tiny_random)
    yield shared
    shared.close()


def test_cells_sharing_an_engine_do_not_share_its_prefix_cache(tmp_path, random_slots):
    """A budget sweep sends the same prompts to one engine cell after cell: without a reset
    the second cell's prefills are served from the first cell's cache."""
    problems = tmp_path / "long.jsonl"
    # prompts of ~400 tokens (several of the CPU build's 128-token blocks), distinct from
    # their first token so that no cell hits the cache on its own
    problems.write_text("".join(
        orjson.dumps({"prompt": f"{i} " + " ".join(str((i * 7 + k) % 100) for k in range(400)),
                      "answer": "1"}).decode() + "\n" for i in range(3)))
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "name: sweep\n"
        "base:\n"
        "  engine: {kind: vllm, model: 'builtin:tiny-random', max_model_len: 4096}\n"
        f"  workload: {{name: '{problems}', prompt_style: plain}}\n"
        "  arrival: {name: batch, batch_size: 3}\n"
        "  grade: false\n"
        "matrix:\n"
        "  max_tokens: [4, 8]\n"
    )
    plan = plan_study(spec, out=tmp_path / "sweep")
    index, _ = _run(plan, random_slots)
    _all_ok(index)
    assert index["sessions"][-1]["engine_starts"] == 0  # both cells on the shared engine
    first, second = (tmp_path / "sweep" / c["id"] for c in index["cells"])
    hits1, queries1 = _prefix_hits(first)
    hits2, queries2 = _prefix_hits(second)
    assert queries1 > 1000 and queries2 > 1000, (queries1, queries2)
    assert hits2 == 0, f"cell 2 served {hits2:g} of {queries2:g} prompt tokens from the cache"
    for cell in (first, second):
        record = orjson.loads((cell / "cell.json").read_bytes())
        assert record["prefix_cache"] == "reset: POST /reset_prefix_cache"
