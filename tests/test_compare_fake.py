"""`compare` on whole runs against the fake server: two runs of one configuration must not
be called different (20 of 20 seeded repetitions), and a server programmed 30 % slower
must still be called slower.

The server adds seeded per-request jitter (lognormal, sigma 0.1) to its latencies, so the
requests of a run differ from each other as they do on a real engine; the client machine
adds its own noise on top (a loaded 2-core box), which is what a same-configuration pair
differs by.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from reasonperf.analysis.base import RunData
from reasonperf.analysis.compare import NO_CI_ONE_RUN, NO_DIFF, compare_runs, compare_sides
from reasonperf.analysis.loader import load_run
from reasonperf.config import load_run_spec
from reasonperf.run import execute_run
from reasonperf.study import plan_study, run_study
from reasonperf.study.report import arm_comparisons
from tests.conftest import run_cli
from tests.fake_server import FakeServer, Programme

REPETITIONS = 20
BASE = Programme(ttft_s=0.05, itl_s=0.003, reasoning_tokens=12, answer_tokens=8, jitter=0.1)
SLOWER = Programme(ttft_s=0.065, itl_s=0.0039, reasoning_tokens=12, answer_tokens=8,
                   jitter=0.1)  # every latency x 1.3


def _run(out: Path, url: str, name: str, limit: int = 40) -> RunData:
    spec = load_run_spec({
        "name": name, "out": str(out),
        "engine": {"kind": "external", "url": url, "model": "fake-model"},
        "workload": {"name": "procedural", "limit": limit},
        "arrival": {"name": "batch", "batch_size": 8},
        "grade": False,
    })
    return load_run(execute_run(spec).run_dir)


def _called_different(result) -> list[tuple[str, str, float | None]]:
    rows = result.numbers["comparisons"][0]["metrics"]
    return [(r["metric"], r["verdict"], r["delta_pct"]) for r in rows
            if r["verdict"] in ("faster", "slower")]


def test_same_configuration_is_no_significant_difference_in_20_of_20(tmp_path):
    flagged = {}
    for rep in range(REPETITIONS):
        with FakeServer(BASE, seed=rep) as srv:
            runs = [_run(tmp_path / f"{rep}{side}", srv.base_url, side) for side in "ab"]
        result = compare_runs(runs, seed=rep)
        if different := _called_different(result):
            flagged[rep] = different
        else:
            assert result.numbers["comparisons"][0]["overall"].startswith("same speed")
    assert not flagged, f"{len(flagged)}/{REPETITIONS} same-config pairs called different: {flagged}"


def test_a_server_30_percent_slower_is_called_slower(tmp_path):
    with FakeServer(BASE, seed=1) as fast, FakeServer(SLOWER, seed=2) as slow:
        base = _run(tmp_path / "base", fast.base_url, "base", limit=80)
        cand = _run(tmp_path / "cand", slow.base_url, "slow", limit=80)
    result = compare_runs([base, cand])
    comp = result.numbers["comparisons"][0]
    rows = {r["metric"]: r for r in comp["metrics"]}
    for key in ("e2e_p50", "e2e_mean", "ttfvt_mean"):
        assert rows[key]["verdict"] == "slower", (key, rows[key])
    assert {r["ci_method"] for r in comp["metrics"] if r["kind"] == "latency"} == {"batches"}
    assert not [r for r in comp["metrics"] if r["verdict"] == "faster"], comp["metrics"]
    # one short run each: a whole-run throughput has no CI and no verdict
    assert rows["output_tps"]["ci_method"] == NO_CI_ONE_RUN
    assert rows["output_tps"]["verdict"] == "n/a"
    assert comp["overall"].startswith("slower")


def test_repeats_give_throughput_a_ci_over_runs(tmp_path):
    with FakeServer(BASE, seed=3) as fast, FakeServer(SLOWER, seed=4) as slow:
        sides = [[_run(tmp_path / f"{name}{i}", srv.base_url, f"{name}{i}") for i in range(3)]
                 for name, srv in (("base", fast), ("slow", slow))]
    rows = {r["metric"]: r for r in compare_sides(sides).numbers["comparisons"][0]["metrics"]}
    assert rows["output_tps"]["ci_method"] == "repeats"
    assert rows["output_tps"]["verdict"] == "slower", rows["output_tps"]
    assert rows["e2e_p50"]["ci_method"] == "repeats"
    assert rows["e2e_p50"]["verdict"] == "slower", rows["e2e_p50"]
    assert rows["accuracy"]["verdict"] == "n/a"  # ungraded
    assert NO_DIFF not in (rows["output_tps"]["verdict"], rows["e2e_p50"]["verdict"])

    # the CLI: DIR1,DIR2,... is one side; the table says how each interval was made
    dirs = [",".join(run.run_dir for run in side) for side in sides]
    proc = run_cli("compare", *dirs)
    assert proc.returncode == 0, proc.stderr
    assert "CI method" in proc.stdout and "repeats" in proc.stdout
    single = run_cli("compare", sides[0][0].run_dir, sides[1][0].run_dir)
    assert "batches" in single.stdout and "no CI: one run each" in single.stdout
    bad = run_cli("compare", *dirs, "--min-effect", "-1")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --min-effect must be >= 0 (got -1)"


def test_study_repeats_are_one_side_of_an_arm_comparison(tmp_path):
    """A study with `repeats: 3`: each arm's three runs are one side of one comparison
    (not three one-run comparisons), so the CIs are over runs."""
    fast_prog = Programme(ttft_s=0.01, itl_s=0.001, reasoning_tokens=10, answer_tokens=5)
    slow_prog = Programme(ttft_s=0.03, itl_s=0.003, reasoning_tokens=10, answer_tokens=5)
    with FakeServer(fast_prog) as fast, FakeServer(slow_prog) as slow:
        study = {
            "name": "repeats",
            "base": {"engine": {"kind": "external", "model": "fake-model"},
                     "workload": {"name": "procedural", "limit": 4},
                     "arrival": {"name": "batch", "batch_size": 4}, "grade": False},
            "matrix": {"arm": {"fast": {"engine": {"url": fast.base_url}},
                               "slow": {"engine": {"url": slow.base_url}}}},
            "repeats": 3,
        }
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump(study, sort_keys=False))
        plan = plan_study(path, out=tmp_path / "out")
        run_study(plan)
    runs = [load_run(tmp_path / "out" / cell.id) for cell in plan.cells]
    results = arm_comparisons(plan, plan.cells, runs)
    assert len(results) == 1 and results[0].title == "Arms on arm: slow against fast"
    comp = results[0].numbers["comparisons"][0]
    assert comp["runs"] == 3 and results[0].numbers["baseline_runs"] == 3
    rows = {r["metric"]: r for r in comp["metrics"]}
    assert rows["output_tps"]["ci_method"] == rows["e2e_p50"]["ci_method"] == "repeats"
    assert rows["e2e_p50"]["verdict"] == "slower", rows["e2e_p50"]
