"""The HTML report: one self-contained file (inline CSS, inline SVG, no script, no
external reference) built from stored runs and their analysis results.

The page is assembled in stages that ``bench/report_render.py`` times one by one:
``run_summary`` (per run), ``headline_rows`` / ``latency_rows`` (tables), the run figures
(``run_figures``), ``analysis_views`` (every AnalysisResult, generically) and
``render_page`` (jinja2). ``markdown.py`` reuses the same rows, so both formats say the
same thing.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from reasonperf import __version__
from reasonperf.analysis.base import AnalysisResult, RunData
from reasonperf.errors import UsageError
from reasonperf.metrics import catalog
from reasonperf.report import plots

MISSING = "–"
NOT_APPLICABLE = "n/a"
LATENCY_METRICS = tuple((m.name, m.label) for m in catalog.by_group("latency"))
LATENCY_STATS = ("mean", "p50", "p90", "p95", "p99", "max")
LATENCY_COLUMNS = ["metric", "n", *LATENCY_STATS, "left out"]


# --------------------------------------------------------------------------- formatting


def fmt_value(v: Any) -> str:
    """Any number or value as a short readable string (tables of analyses)."""
    if v is None:
        return MISSING
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v:  # NaN
            return MISSING
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.4g}"
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, default=str, separators=(", ", ": "))
    return str(v)


def fmt_seconds(v: Any) -> str:
    if v is None:
        return MISSING
    v = float(v)
    if v != v:
        return MISSING
    if abs(v) < 0.01:
        return f"{v * 1000:.2f} ms"
    if abs(v) < 1:
        return f"{v * 1000:.0f} ms"
    if abs(v) < 100:
        return f"{v:.2f} s"
    return f"{v:,.0f} s"


def fmt_pct(v: Any) -> str:
    return MISSING if v is None else f"{float(v) * 100:.1f} %"


def fmt_rate(v: Any, unit: str) -> str:
    if v is None:
        return MISSING
    v = float(v)
    return f"{v:,.0f} {unit}" if abs(v) >= 100 else f"{v:.3g} {unit}"


def fmt_int(v: Any) -> str:
    return MISSING if v is None else f"{int(v):,}"


def _dig(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


# --------------------------------------------------------------------------- summary


def run_summary(run: RunData) -> dict[str, Any]:
    """summary.json when the run has one, else the same sections computed in memory
    (nothing is written: a report never changes a run directory)."""
    if run.summary:
        return run.summary
    from reasonperf.summary_io import compute_summary

    return compute_summary(run.info, run.requests, run.chunks, run.timeline)


@dataclass
class Row:
    """One line of the headline table: a label and one cell per run."""

    section: str
    label: str
    cells: list[str]


def _lat(s: dict[str, Any], metric: str, *stats: str) -> str:
    d = _dig(s, "latency", metric) or {}
    if not d.get("count"):
        return NOT_APPLICABLE if d.get("requests") else MISSING
    return " / ".join(fmt_seconds(d.get(k)) for k in stats)


def _label(name: str) -> str:
    return catalog.get(name).label


def _tps(s: dict[str, Any], key: str) -> str:
    """A token rate, with its coverage when some requests had no token count."""
    text = fmt_rate(_dig(s, "throughput", key), "tok/s")
    cov = _dig(s, "throughput", "token_coverage")
    if text != MISSING and cov is not None and cov < 1:
        text += f" (≥, {cov:.0%} of requests counted)"
    return text


def _truth(s: dict[str, Any], key: str) -> str:
    d = _dig(s, "truth", key) or {}
    if d.get("ratio") is None:
        return MISSING
    flag = "" if d.get("in_band") else " ⚠"
    return (f"{fmt_seconds(d['client_mean_s'])} / {fmt_seconds(d['engine_mean_s'])} = "
            f"{d['ratio']:.3f}{flag}")


def _truth_tokens(s: dict[str, Any]) -> str:
    d = _dig(s, "truth", "tokens") or {}
    if d.get("engine") is None:
        return MISSING
    return f"{fmt_int(d.get('client'))} / {fmt_int(d.get('engine'))}" + ("" if d.get("agrees") else " ⚠")


def accuracy_cell(s: dict[str, Any]) -> str:
    a = _dig(s, "accuracy", "overall")
    if not a or a.get("avg_at_n") is None:
        return MISSING
    n = a["n_min"] if a.get("n_min") == a.get("n_max") else f"{a.get('n_min')}-{a.get('n_max')}"
    return f"{a['avg_at_n'] * 100:.1f} % ± {(a.get('se') or 0) * 100:.1f} (avg@{n})"


def _reasoning_share(t: dict[str, Any]) -> str:
    r, c = t.get("reasoning"), t.get("completion")
    if r is None:
        return MISSING
    share = f" ({r / c * 100:.0f} %)" if c else ""
    return f"{r:,}{share}"


def _token_check(t: dict[str, Any]) -> str:
    chk = t.get("check") or {}
    if not chk:
        return MISSING
    if not chk.get("checked"):
        return "not checked"
    if chk.get("mismatches"):
        return f"{chk['mismatches']:,} mismatches of {chk['checked']:,}"
    return f"ok ({chk['checked']:,} checked)"


def _counts(d: Any) -> str:
    if not d:
        return MISSING
    return ", ".join(f"{k} {v:,}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))


# (section, label, cell builder from one summary)
HEADLINE: tuple[tuple[str, str, Callable[[dict[str, Any]], str]], ...] = (
    ("Requests", "ok / total", lambda s: f"{s['requests']['ok']:,} / {s['requests']['total']:,}"),
    ("Requests", "errors", lambda s: _counts(s["requests"].get("error_types")) if s["requests"]["errors"] else "0"),
    ("Requests", "finish reasons", lambda s: _counts(s["requests"].get("finish_reasons"))),
    ("Latency", f"{_label('ttft')} p50 / p99", lambda s: _lat(s, "ttft", "p50", "p99")),
    ("Latency", f"{_label('ttfvt')} p50 / p99", lambda s: _lat(s, "ttfvt", "p50", "p99")),
    ("Latency", f"{_label('e2e')} p50 / p99", lambda s: _lat(s, "e2e", "p50", "p99")),
    ("Latency", f"{_label('thinking_s')} p50 / p99", lambda s: _lat(s, "thinking_s", "p50", "p99")),
    ("Latency", f"{_label('tpot')} p50 / p99", lambda s: _lat(s, "tpot", "p50", "p99")),
    ("Latency", f"{_label('itl')} p50 / p99", lambda s: _lat(s, "itl", "p50", "p99")),
    ("Latency", f"{_label('client_queue_s')} p99", lambda s: _lat(s, "client_queue_s", "p99")),
    ("Throughput", "window (active time)", lambda s: fmt_seconds(_dig(s, "throughput", "window_s"))),
    ("Throughput", _label("request_throughput"), lambda s: fmt_rate(_dig(s, "throughput", "request_throughput"), "req/s")),
    ("Throughput", _label("output_tps"), lambda s: _tps(s, "output_tps")),
    ("Throughput", _label("visible_tps"), lambda s: _tps(s, "visible_tps")),
    ("Throughput", _label("paper_tps"), lambda s: _tps(s, "paper_tps")),
    ("Throughput", _label("token_coverage"), lambda s: fmt_pct(_dig(s, "throughput", "token_coverage"))),
    ("Throughput", _label("goodput"), lambda s: fmt_rate(_dig(s, "throughput", "goodput"), "req/s")),
    ("Throughput", _label("correct_goodput"), lambda s: fmt_rate(_dig(s, "throughput", "correct_goodput"), "req/s")),
    ("Throughput", _label("slo_attainment"), lambda s: fmt_pct(_dig(s, "throughput", "slo_attainment"))),
    ("Tokens", "prompt", lambda s: fmt_int(_dig(s, "tokens", "prompt"))),
    ("Tokens", "completion", lambda s: fmt_int(_dig(s, "tokens", "completion"))),
    ("Tokens", "reasoning (share)", lambda s: _reasoning_share(s.get("tokens") or {})),
    ("Tokens", "answer", lambda s: fmt_int(_dig(s, "tokens", "answer"))),
    ("Tokens", "count source", lambda s: _counts(_dig(s, "tokens", "count_source"))),
    ("Tokens", "token counts agree (chunks / usage)", lambda s: _token_check(s.get("tokens") or {})),
    ("Server", "KV cache mean / p95 / max", lambda s: " / ".join(
        fmt_pct(_dig(s, "server", f"kv_cache_usage_{k}")) for k in ("mean", "p95", "max"))
        if _dig(s, "server", "kv_cache_usage_mean") is not None else MISSING),
    ("Server", "KV cache std / mean |change|", lambda s: " / ".join(
        fmt_pct(_dig(s, "server", k)) for k in ("kv_cache_usage_std", "kv_cache_usage_mean_abs_change"))
        if _dig(s, "server", "kv_cache_usage_std") is not None else MISSING),
    ("Server", "time with KV cache > 90 %", lambda s: fmt_pct(_dig(s, "server", "kv_cache_usage_frac_high"))),
    ("Server", "running / waiting max", lambda s: " / ".join(
        fmt_int(_dig(s, "server", k)) for k in ("requests_running_max", "requests_waiting_max"))
        if _dig(s, "server", "requests_running_max") is not None else MISSING),
    ("Server", "preemptions", lambda s: fmt_int(_dig(s, "server", "preemptions"))),
    ("Server", "prefix cache hit rate", lambda s: fmt_pct(_dig(s, "server", "prefix_cache_hit_rate"))),
    ("Server", "spec. decode acceptance", lambda s: fmt_pct(_dig(s, "server", "spec_decode_acceptance_rate"))),
    ("Server", "engine − client generated tokens", lambda s: fmt_value(_dig(s, "server", "generation_tokens_diff"))),
    ("Truth", "completion tokens client / engine", _truth_tokens),
    ("Truth", "mean TTFT client / engine", lambda s: _truth(s, "ttft")),
    ("Truth", "mean E2E client / engine", lambda s: _truth(s, "e2e")),
    ("Server", "GPU memory max", lambda s: MISSING if _dig(s, "server", "gpu_memory_used_bytes_max") is None
        else f"{_dig(s, 'server', 'gpu_memory_used_bytes_max') / 2**30:.2f} GiB"),
    ("Accuracy", "accuracy ± SE", accuracy_cell),
    ("Accuracy", "problems / samples", lambda s: MISSING if not _dig(s, "accuracy", "overall") else
        f"{_dig(s, 'accuracy', 'overall', 'n_problems'):,} / {_dig(s, 'accuracy', 'overall', 'n_samples'):,}"),
    ("Accuracy", "cons@n", lambda s: fmt_pct(_dig(s, "accuracy", "overall", "cons_at_n"))),
    ("Accuracy", "pass@k", lambda s: ", ".join(
        f"pass@{k} {fmt_pct(v)}" for k, v in (_dig(s, "accuracy", "overall", "pass_at_k") or {}).items())
        or MISSING),
    ("Accuracy", _label("truncation_rate"), lambda s: fmt_pct(_dig(s, "accuracy", "overall", "truncation_rate"))),
    ("Accuracy", "no answer extracted", lambda s: fmt_pct(_dig(s, "accuracy", "overall", "extraction_failure_rate"))),
    ("Accuracy", "completion tokens per correct answer", lambda s: fmt_value(_dig(s, "accuracy", "tokens_per_correct"))),
)


def _cell(fn: Callable[[dict[str, Any]], str], s: dict[str, Any]) -> str:
    """A missing section (an older summary.json) shows as missing, never as an error."""
    try:
        return fn(s)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return MISSING


def headline_rows(summaries: Sequence[dict[str, Any]]) -> list[Row]:
    """The summary table, one cell per run; rows that no run has are left out."""
    rows = []
    for section, label, fn in HEADLINE:
        cells = [_cell(fn, s) for s in summaries]
        if any(c != MISSING for c in cells):
            rows.append(Row(section, label, cells))
    return rows


def latency_rows(summary: dict[str, Any]) -> list[list[str]]:
    """metric, n, mean, p50, p90, p95, p99, max, left out, for each latency metric: a
    metric with no value although requests exist shows n/a (e.g. thinking of a model that
    does not reason), never zeros."""
    out = []
    for key, label in LATENCY_METRICS:
        d = _dig(summary, "latency", key) or {}
        left_out = ", ".join(f"{k} {v:,}" for k, v in (d.get("excluded") or {}).items()) or MISSING
        n = d.get("requests_qualified", d.get("count")) if key == "itl" else d.get("count")
        if d.get("count"):
            out.append([label, f"{n:,}", *(fmt_seconds(d.get(k)) for k in LATENCY_STATS), left_out])
        elif d.get("requests"):
            out.append([label, "0", *([NOT_APPLICABLE] * len(LATENCY_STATS)), left_out])
    return out


# --------------------------------------------------------------------------- provenance


def _raw(v: Any) -> str:
    """Provenance values as written in the spec (4096, not 4,096): they are to be copied."""
    if isinstance(v, (dict, list)):
        return json.dumps(v, default=str, separators=(",", ":"))
    return str(v)


def _non_null(d: Any) -> str:
    if not isinstance(d, dict):
        return fmt_value(d)
    items = [f"{k}={_raw(v)}" for k, v in d.items() if v not in (None, {}, [], "")]
    return ", ".join(items) or MISSING


def provenance(run: RunData) -> list[tuple[str, str]]:
    """(label, value) pairs that say exactly what was measured and how to repeat it."""
    info = run.info
    spec = info.get("spec") or {}
    eng = info.get("engine") or {}
    clock = info.get("clock") or {}
    started = clock.get("wall_time_unix")
    segments = info.get("segments") or []
    cmd = eng.get("command")
    rows = [
        ("run id", info.get("run_id")),
        ("directory", run.run_dir),
        ("started (UTC)", dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
         if started else None),
        ("segments", f"{len(segments)} ({sum(bool(s.get('resumed')) for s in segments)} resumed)"
         if segments else None),
        ("engine", " ".join(str(x) for x in (eng.get("kind"), eng.get("version")) if x) or None),
        ("model", eng.get("model") or _dig(spec, "engine", "model")),
        ("served model", eng.get("served_model")),
        ("endpoint", eng.get("base_url") or _dig(spec, "engine", "url")),
        ("command", shlex.join(str(c) for c in cmd) if cmd else None),
        ("engine settings", _non_null({k: v for k, v in (spec.get("engine") or {}).items()
                                       if k not in ("kind", "model", "url", "env", "api_key_env")})),
        ("workload", _non_null(spec.get("workload"))),
        ("arrival", _non_null(spec.get("arrival"))),
        ("sampling", _non_null(spec.get("sampling"))),
        ("seed", _raw(info.get("seed", spec.get("seed")))),
        ("requests planned", _raw(info.get("num_requests"))),
        ("API / SLO", f"{spec.get('api', MISSING)} / {_non_null(spec.get('slo')) if spec.get('slo') else 'none'}"),
        ("per-chunk token counts", info.get("continuous_usage")),
        ("reasonperf", info.get("reasonperf_version")),
        ("packages", _non_null(info.get("versions"))),
        ("host", _non_null(info.get("host"))),
    ]
    out = [(k, fmt_value(v)) for k, v in rows if v not in (None, "", {}, [])]
    return [(k, v) for k, v in out if v not in (MISSING, "None")]


# --------------------------------------------------------------------------- figures + analyses


@dataclass
class FigureView:
    dom_id: str
    title: str
    kind: str
    svg: Markup
    caption: str | None = None


@dataclass
class TableView:
    title: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class AnalysisView:
    name: str
    title: str
    anchor: str
    skipped: str | None
    findings: list[str] = field(default_factory=list)
    numbers: list[tuple[str, str]] = field(default_factory=list)
    tables: list[TableView] = field(default_factory=list)
    figures: list[FigureView] = field(default_factory=list)


class _Ids:
    """Stable, unique, HTML-safe element ids (``fig-<what>``), deduplicated with -2, -3."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, *parts: object) -> str:
        base = "-".join(re.sub(r"[^a-z0-9]+", "-", str(p).lower()).strip("-") for p in parts)
        dom_id, i = base, 1
        while dom_id in self.used:
            i += 1
            dom_id = f"{base}-{i}"
        self.used.add(dom_id)
        return dom_id


def flatten_numbers(numbers: dict[str, Any], prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    """Nested headline numbers as (key path, formatted value), two levels deep."""
    out: list[tuple[str, str]] = []
    for k, v in numbers.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and depth < 2:
            out.extend(flatten_numbers(v, f"{key} · ", depth + 1))
        else:
            out.append((key, fmt_value(v)))
    return out


def run_figures(runs: Sequence[RunData], ids: Callable[..., str] | None = None) -> dict[str, list[FigureView]]:
    """The report's own figures: latency CDFs (all runs together), and per run the
    KV-cache/requests timeline and the request Gantt."""
    ids = ids or _Ids()
    out: dict[str, list[FigureView]] = {"cdf": [], "timeline": [], "gantt": []}
    for f in plots.latency_cdf_figures(runs):
        dom = ids("fig", f.id)
        out["cdf"].append(FigureView(dom, f.title, f.kind, Markup(plots.draw_figure(f, dom, 4.6, 3.2)), f.notes))
    for i, run in enumerate(runs, 1):
        dom = ids("fig-timeline", i)
        out["timeline"].append(FigureView(
            dom, f"KV cache and requests over time: {run.label}", "timeline",
            Markup(plots.timeline_svg(run, dom)),
            "KV-cache usage with the 90 % line and preemptions (red); requests running and "
            "waiting in the engine, and in flight at the client (dotted)."))
        g = plots.gantt_figure(run)
        dom = ids("fig-gantt", i)
        out["gantt"].append(FigureView(dom, g.title, g.kind, Markup(plots.draw_figure(g, dom, 9.6, legend=False)), g.notes))
    return out


def analysis_views(results: Iterable[AnalysisResult], ids: Callable[..., str] | None = None) -> list[AnalysisView]:
    """Every AnalysisResult, rendered generically: numbers, tables, figures, findings,
    or the reason it was skipped. A figure that fails to draw shows the error in its
    place instead of losing the whole report."""
    ids = ids or _Ids()
    views = []
    for r in results:
        view = AnalysisView(r.name, r.title, ids("analysis", r.name), r.skipped, list(r.findings),
                            flatten_numbers(r.numbers))
        for t in r.tables:
            view.tables.append(TableView(t.title, [str(c) for c in t.columns],
                                         [[fmt_value(c) for c in row] for row in t.rows]))
        for f in r.figures:
            dom = ids("fig", r.name, f.id)
            try:
                svg = plots.draw_figure(f, dom)
            except Exception as err:  # noqa: BLE001 - one bad figure must not sink the report
                svg = f'<p class="rp-error">figure could not be drawn: {Markup.escape(str(err))}</p>'
            view.figures.append(FigureView(dom, f.title, f.kind, Markup(svg), f.notes))
        views.append(view)
    return views


# --------------------------------------------------------------------------- page


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reasonperf.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt_value
    return env


def build_context(runs: Sequence[RunData], results: Sequence[AnalysisResult]) -> dict[str, Any]:
    """Everything the template shows, computed (the slow part of a report)."""
    if not runs:
        raise UsageError("report: no runs given; pass one or more run directories")
    summaries = [run_summary(r) for r in runs]
    ids = _Ids()
    figures = run_figures(runs, ids)
    return {
        "title": "reasonperf report: " + ", ".join(r.label for r in runs),
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
        "runs": [
            {
                "label": r.label,
                "model": _dig(r.info, "engine", "served_model") or _dig(r.info, "spec", "engine", "model"),
                "cards": _cards(s),
                "latency": latency_rows(s),
                "provenance": provenance(r),
                "warnings": [str(w) for w in (s.get("warnings") or r.info.get("warnings") or [])],
                "notes": [str(n) for n in r.info.get("notes") or []],
                "run_json": json.dumps(r.info, indent=2, default=str),
                "timeline": figures["timeline"][i],
                "gantt": figures["gantt"][i],
            }
            for i, (r, s) in enumerate(zip(runs, summaries, strict=True))
        ],
        "labels": [r.label for r in runs],
        "headline": headline_rows(summaries),
        "cdfs": figures["cdf"],
        "analyses": analysis_views(results, ids),
        "latency_columns": LATENCY_COLUMNS,
    }


def _cards(s: dict[str, Any]) -> list[tuple[str, str]]:
    """The four numbers a reader looks for first."""
    return [
        ("E2E p50", _cell(lambda x: _lat(x, "e2e", "p50"), s)),
        ("TTFVT p50", _cell(lambda x: _lat(x, "ttfvt", "p50"), s)),
        (_label("output_tps"), _cell(lambda x: fmt_rate(_dig(x, "throughput", "output_tps"), ""), s)),
        ("accuracy", _cell(lambda x: (f"{_dig(x, 'accuracy', 'overall', 'avg_at_n') * 100:.1f} %"
                                      if _dig(x, "accuracy", "overall", "avg_at_n") is not None else MISSING), s)),
    ]


def render_page(context: dict[str, Any]) -> str:
    return _environment().get_template("report.html.jinja").render(**context)


def render_html(runs: list[RunData], results: list[AnalysisResult], out: Path) -> Path:
    """Write the report for ``runs`` (with their analysis ``results``) to ``out``."""
    html = render_page(build_context(runs, results))
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"report -o {out}: is a directory; give a file name such as report.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out
