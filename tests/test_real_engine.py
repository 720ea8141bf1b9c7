"""End to end against the real vLLM CPU engine (issues 2, 3 and 4's real-engine checks).

Each engine start costs 30-50 s here, so the engines are shared session fixtures
(tests/conftest_engine.py) except where the test is about launching one.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import aiohttp
import pyarrow.parquet as pq
import pytest

from reasonperf.config import load_run_spec
from reasonperf.run import execute_run
from reasonperf.telemetry.prometheus import scrape
from tests.conftest import run_cli

pytestmark = pytest.mark.engine


def _metrics(url: str) -> dict[str, float]:
    async def go() -> dict[str, float]:
        async with aiohttp.ClientSession() as s:
            return await scrape(s, url)
    return asyncio.run(go())


def _external_spec(tmp_path, engine, **over):
    data = {
        "name": "real",
        "out": str(tmp_path),
        "engine": {"kind": "external", "url": engine.base_url, "metrics_url": engine.metrics_url,
                   "model": engine.served_model},
        "workload": {"name": "procedural", "limit": 16, "options": {"levels": [1, 3]}},
        "arrival": {"name": "batch", "batch_size": 16},
        "sampling": {"max_tokens": 32},
        "sample_interval_s": 0.2,
    }
    data.update(over)
    return load_run_spec(data)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_token_counts_equal_the_engines_generation_counter(tmp_path, vllm_tiny_random):
    res = execute_run(_external_spec(tmp_path, vllm_tiny_random))
    rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    assert len(rows) == 16 and all(r["status"] == "ok" for r in rows)
    for r in rows:
        assert r["first_token_s"] is not None and r["first_visible_s"] is not None and r["done_s"] is not None
        assert r["sent_s"] < r["first_token_s"] <= r["first_visible_s"] <= r["done_s"]
        assert r["completion_tokens"] == 32  # tiny-random never stops early
    client_total = sum(r["completion_tokens"] for r in rows)
    # The engine's counter increase over the run, from the run's own timeline (the first
    # sample is taken before any request; the last after the engine drained).
    timeline = pq.read_table(res.run_dir / "timeline.parquet").to_pylist()
    gen = [t["value"] for t in sorted(timeline, key=lambda t: t["t_s"]) if t["metric"] == "generation_tokens_total"]
    assert len(gen) >= 2
    assert gen[-1] - gen[0] == client_total
    assert res.summary["server"]["generation_tokens_diff"] == 0
    assert res.summary["tokens"]["check"]["mismatches"] == 0


def test_scripted_reasoner_splits_reasoning_from_the_answer(tmp_path, vllm_tiny_reasoner):
    res = execute_run(_external_spec(tmp_path, vllm_tiny_reasoner, sampling={"max_tokens": 200},
                                     workload={"name": "procedural", "limit": 4}))
    rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    assert len(rows) == 4
    for r in rows:
        assert r["status"] == "ok" and r["finish_reason"] == "stop"
        assert r["reasoning_text"] and r["answer_text"]
        assert r["reasoning_tokens"] > 0 and r["answer_tokens"] > 0
        assert r["reasoning_tokens"] + r["answer_tokens"] == r["completion_tokens"]
        # thinking came first (one network read can carry both when a loaded CPU delays the
        # stream: then they share a timestamp)
        assert r["first_visible_s"] >= r["first_token_s"]
        assert r["reasoning_end_s"] <= r["first_visible_s"]  # equal when one read carried both
    lat = res.summary["latency"]
    assert lat["ttfvt"]["p50"] > lat["ttft"]["p50"]
    assert lat["reasoning_tpot"]["count"] == 4 and lat["answer_tpot"]["count"] == 4
    # the chunk table carries both phases with per-chunk token counts
    chunks = pq.read_table(res.run_dir / "chunks.parquet").to_pylist()
    assert {c["kind"] for c in chunks} == {"reasoning", "answer"}


def test_small_kv_cache_saturates_queues_preempts_and_compares_slower(
    tmp_path, engine_test_models, vllm_tiny_random
):
    """The study's saturation, made on purpose: 32 KV blocks of 32 tokens (1,024 tokens)
    for 24 concurrent requests of ~450 tokens each (small blocks: a cache one block short
    of full still reads >= 0.9, so a sample taken between preemptions shows it); then `reasonperf compare` against the same
    load on a roomy KV cache reports the latency cost with a verdict."""
    load = {
        "workload": {"name": "procedural", "limit": 24},
        "arrival": {"name": "concurrency", "concurrency": 24},
        "sampling": {"max_tokens": 400},
        "sample_interval_s": 0.1,
        "grade": False,
    }
    base = execute_run(_external_spec(tmp_path / "base", vllm_tiny_random, name="roomy-kv", **load))
    spec = load_run_spec({
        "name": "small-kv",
        "out": str(tmp_path / "small"),
        "engine": {"kind": "vllm", "model": str(engine_test_models["tiny-random"]),
                   "max_model_len": 512, "num_gpu_blocks_override": 32,
                   "extra_args": ["--block-size", "32"]},
        **load,
    })
    res = execute_run(spec)
    srv = res.summary["server"]
    assert res.summary["requests"]["ok"] == 24
    assert srv["preemptions"] > 0, srv  # a counter: robust to slow scrapes
    assert srv["kv_cache_usage_max"] >= 0.9, srv
    assert srv["requests_waiting_max"] > 0, srv
    engine = json.loads((res.run_dir / "run.json").read_text())["engine"]
    assert "--num-gpu-blocks-override" in engine["command"]
    assert (res.run_dir / "engine.log").exists()
    assert base.summary["server"]["preemptions"] == 0

    proc = run_cli("compare", str(base.run_dir), str(res.run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {c["metric"]: c for c in json.loads(proc.stdout)["comparisons"][0]["metrics"]}
    # the cost of a cache too small: requests wait for blocks, so TTFT is far slower. E2E
    # can go either way on a CPU (the fewer sequences that fit decode faster each), and
    # output tok/s is one number per run: no CI, no verdict from one run each.
    assert rows["ttft_p50"]["verdict"] == "slower", rows["ttft_p50"]
    assert rows["ttft_p50"]["ci_method"] == "requests"  # concurrency mode: no batches
    assert rows["output_tps"]["ci_method"] == "no CI: one run each"
    assert rows["output_tps"]["verdict"] == "n/a"


def test_compare_same_configuration_no_accuracy_difference(tmp_path, vllm_tiny_reasoner):
    """Two runs of one configuration: accuracy is 'no significant difference'. The
    scripted reasoner always answers 42; half the golds are 42."""
    data = tmp_path / "half42.jsonl"
    data.write_text("".join(
        json.dumps({"question": f"What is {i} times 6 minus {i * 6 - (42 if i % 2 else 7)}?",
                    "answer": str(42 if i % 2 else 7)}) + "\n"
        for i in range(1, 13)
    ))
    runs = []
    for name in ("a", "b"):
        res = execute_run(_external_spec(tmp_path / name, vllm_tiny_reasoner, name=name,
                                         workload={"name": str(data)}, sampling={"max_tokens": 64},
                                         arrival={"name": "batch", "batch_size": 12}))
        acc = res.summary["accuracy"]["overall"]
        assert acc["avg_at_n"] == 0.5 and acc["n_problems"] == 12
        runs.append(str(res.run_dir))
    proc = run_cli("compare", *runs, "--json")
    assert proc.returncode == 0, proc.stderr
    verdicts = {c["metric"]: c["verdict"] for c in json.loads(proc.stdout)["comparisons"][0]["metrics"]}
    assert verdicts["accuracy"] == "no significant difference", verdicts
    table = run_cli("compare", *runs)
    assert table.returncode == 0 and "no significant difference" in table.stdout


def test_embedded_engine_run_from_the_cli_is_graded_and_stopped(tmp_path):
    """`reasonperf run` with no endpoint: the embedded tiny-thinker on vLLM CPU, procedural
    problems (what it was trained on) graded end to end, its thinking split off."""
    workload = ["--workload", "procedural", "--option", "levels=1,2"]
    proc = run_cli("run", *workload, "--limit", "8", "--arrival", "batch", "--batch-size", "8",
                   "--max-tokens", "96", "--sample-interval", "0.2", "--out", str(tmp_path),
                   "--name", "embedded")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = list(tmp_path.iterdir())
    info = json.loads((run_dir / "run.json").read_text())
    assert info["engine"]["kind"] == "vllm" and "tiny-thinker" in info["engine"]["model"]
    pid = info["engine"].get("pid")
    if pid is not None:
        assert not _pid_alive(pid), "engine process still running after the run"
    rows = pq.read_table(run_dir / "requests.parquet").to_pylist()
    assert len(rows) == 8 and all(r["status"] == "ok" for r in rows)
    # the default model reasons: its pre-opened thinking is split off, not taken as the answer
    assert sum((r["reasoning_tokens"] or 0) > 0 and not r["thinking_truncated"] for r in rows) >= 6
    assert info["think_open"]["prompt_opens_think"] is True
    # telemetry covers the run
    tl = pq.read_table(run_dir / "timeline.parquet").to_pylist()
    metrics = {t["metric"] for t in tl}
    assert {"kv_cache_usage", "requests_running"} <= metrics
    times = [t["t_s"] for t in tl if t["metric"] == "kv_cache_usage"]
    assert min(times) <= min(r["sent_s"] for r in rows)
    assert max(times) >= max(r["done_s"] for r in rows)
    # graded, with an error bar, in the summary and on the console
    summary = json.loads((run_dir / "summary.json").read_text())
    acc = summary["accuracy"]["overall"]
    assert acc["n_problems"] == 8 and acc["avg_at_n"] is not None and acc["se"] is not None
    assert "accuracy avg@1" in proc.stdout
    assert all(r["correct"] is not None and r["extraction_method"] for r in rows)
    # regrading a stored run is deterministic and needs no engine
    cols = ("extracted_answer", "extraction_method", "correct", "truncated")
    before = [{c: r[c] for c in cols} for r in rows]
    for _ in range(2):
        regrade = run_cli("grade", str(run_dir))
        assert regrade.returncode == 0, regrade.stderr
        again = pq.read_table(run_dir / "requests.parquet").to_pylist()
        assert [{c: r[c] for c in cols} for r in again] == before


def test_engine_that_cannot_start_is_one_line_exit_2_no_orphan(tmp_path):
    marker = tmp_path / "no-such-model-dir"
    t0 = time.monotonic()
    proc = run_cli("run", "--engine", "vllm", "--model", str(marker), "--limit", "1",
                   "--out", str(tmp_path / "runs"), timeout=400)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "vllm" in err.lower() and str(marker) in err
    assert time.monotonic() - t0 < 400
    # nothing serving that model is left behind
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            assert str(marker) not in cmd or int(pid) == os.getpid(), cmd


def test_report_of_real_batch_and_gamma_runs_renders_in_chromium(tmp_path, vllm_tiny_reasoner):
    """A small batch run and a small gamma run on the real engine, reported with
    `reasonperf report`, opened in headless Chromium: every figure rendered."""
    from tests.test_report_browser import _chromium, assert_every_figure_rendered, open_in_chromium

    _chromium()
    batch = execute_run(_external_spec(tmp_path / "b", vllm_tiny_reasoner, name="batch",
                                       workload={"name": "procedural", "limit": 8},
                                       sampling={"max_tokens": 64},
                                       arrival={"name": "batch", "batch_size": 4}))
    gamma = execute_run(_external_spec(tmp_path / "g", vllm_tiny_reasoner, name="gamma",
                                       workload={"name": "procedural", "limit": 12},
                                       sampling={"max_tokens": 64},
                                       arrival={"name": "gamma", "rate": 4.0, "cv": 2.0}))
    out = tmp_path / "report.html"
    proc = run_cli("report", str(batch.run_dir), str(gamma.run_dir), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    for section in ("fig-cdf-ttft", "fig-cdf-ttfvt", "fig-cdf-e2e", "fig-timeline-1", "fig-gantt-1",
                    "fig-gantt-2", "stragglers", "memory"):
        assert section in html, section
    shot = Path("test-artifacts") / "report-real-engine.png"
    seen = open_in_chromium(out, tmp_path, shot)
    figures = assert_every_figure_rendered(out, seen, shot)
    assert len(figures) >= 7
    md = run_cli("report", str(batch.run_dir), "--format", "md", "-o", str(tmp_path / "r.md"))
    assert md.returncode == 0 and (tmp_path / "r.md").read_text().startswith("#")
