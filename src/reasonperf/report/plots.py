"""Figures for the report: figure *data* (analysis.base.Figure) drawn as inline SVG.

Why matplotlib SVG and not plotly: the report must open offline as one file. Inline SVG
needs no script at all (plotly would inline ~3.5 MB of JavaScript per report), renders
the same in every browser and in a headless test, stays selectable text
(``svg.fonttype = none``), and lets very large series degrade gracefully: long lines are
thinned keeping each bucket's minimum and maximum (spikes survive), big scatters are
rasterised inside the SVG. The price is no hover; the tables carry the exact numbers.

Everything here is a pure function of its inputs; matplotlib's global rcParams are only
touched inside ``rc_context`` and pyplot (global figure state) is never imported.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from matplotlib.axes import Axes
from matplotlib.figure import Figure as MplFigure
from matplotlib.rcsetup import cycler
from matplotlib.typing import RcKeyType

from reasonperf.analysis.base import Figure, RunData, Series
from reasonperf.metrics.request import request_metrics
from reasonperf.telemetry import names

# Okabe-Ito: distinguishable for colour-blind readers, in this order for series
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
PHASE_COLORS = {
    "waiting": "#B8BEC8",  # sent -> first token (queue + prefill)
    "thinking": "#7B5BD6",  # first token -> end of reasoning
    "answer": "#1B9E77",  # first visible token -> done
    "error": "#D64545",
}
MAX_LINE_POINTS = 4000  # longer lines are thinned (min/max per bucket)
MAX_VECTOR_MARKERS = 5000  # bigger scatters are rasterised inside the SVG
CDF_POINTS = 1000  # quantiles drawn per CDF curve
GANTT_MAX_ROWS = 2000
KNOWN_KINDS = ("line", "step", "scatter", "bar", "cdf", "gantt", "hist")

RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",  # keep text as <text>: smaller, selectable, page font
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "sans-serif"],
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "axes.prop_cycle": cycler(color=PALETTE),
}

OUTSIDE: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}  # legend right of the axes
_ID = re.compile(r'\bid="([^"]+)"')
_REF = re.compile(r'(href="#|url\(#)([^")]+)')


# --------------------------------------------------------------------------- SVG output


def to_svg(fig: MplFigure, dom_id: str) -> str:
    """The figure as an inline ``<svg>`` element: no XML prologue or metadata, ids made
    unique to this figure (matplotlib restarts ``axes_1``, ``line2d_1`` ... in every file,
    and duplicate ids in one page are invalid), sized by CSS instead of points."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.05)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = _ID.sub(lambda m: f'id="{dom_id}-{m.group(1)}"', svg)
    svg = _REF.sub(lambda m: f"{m.group(1)}{dom_id}-{m.group(2)}", svg)
    head_end = svg.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[:head_end])
    return f'{head} class="rp-svg" role="img"{svg[head_end:]}'


def _new_figure(width: float, height: float) -> MplFigure:
    return MplFigure(figsize=(width, height), layout="constrained")


# --------------------------------------------------------------------------- helpers


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _column(table: pa.Table, name: str) -> np.ndarray:
    """A numeric column as float64, NaN for nulls (vectorised: runs have 100k rows)."""
    return np.asarray(table[name].to_numpy(zero_copy_only=False), dtype=np.float64)


def _is_categorical(values: Sequence[Any]) -> bool:
    return any(isinstance(v, str) for v in values)


def _categories(values: Sequence[Any]) -> list[str]:
    return ["none" if v is None else str(v) for v in values]


def thin(x: np.ndarray, y: np.ndarray, max_points: int = MAX_LINE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points`` points of a line, keeping the minimum and the maximum of
    each bucket (in time order) so that short spikes stay visible. NaN points are
    dropped."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)
    if n <= max_points:
        return x, y
    buckets = max_points // 2
    size = -(-n // buckets)  # ceil
    pad = buckets * size - n
    yp = np.concatenate([y, np.full(pad, y[-1])]).reshape(buckets, size)
    base = np.arange(buckets) * size
    lo = np.minimum(base + yp.argmin(axis=1), n - 1)
    hi = np.minimum(base + yp.argmax(axis=1), n - 1)
    idx = np.unique(np.concatenate([lo, hi]))
    return x[idx], y[idx]


def ecdf(values: np.ndarray, points: int = CDF_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(x, F(x)) of the finite values at ``points`` evenly spaced probabilities, so a
    curve over 100,000 requests costs the same as one over 1,000."""
    v = np.sort(values[np.isfinite(values)])
    if len(v) == 0:
        return v, v
    if len(v) <= points:
        return v, np.arange(1, len(v) + 1) / len(v)
    p = np.linspace(0.0, 1.0, points)
    return np.quantile(v, p), p


def _use_log(values: np.ndarray) -> bool:
    v = values[np.isfinite(values)]
    if len(v) < 2 or v.min() <= 0:
        return False
    lo, hi = np.percentile(v, [1, 99])
    return bool(lo > 0 and hi / lo > 100)


def _no_data(ax: Axes, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777")


def _interval(s: Series, y: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Error-bar bounds of a series: extra "ci_low"/"ci_high" (absolute bounds, e.g. a
    bootstrap interval that need not be symmetric) win over "y_err"."""
    lo, hi = s.extra.get("ci_low"), s.extra.get("ci_high")
    if lo is not None and hi is not None and len(lo) == len(hi) == len(y):
        return _floats(lo), _floats(hi)
    err = s.extra.get("y_err")
    if err is not None and len(err) == len(y):
        return _err_bounds(y, err)
    return None


def _err_bounds(y: np.ndarray, err: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """y_err entries are a half-width (symmetric) or a (low, high) interval."""
    lo, hi = np.empty(len(y)), np.empty(len(y))
    for i, e in enumerate(err):
        if e is None:
            lo[i] = hi[i] = np.nan
        elif isinstance(e, (list, tuple)) and len(e) == 2:
            lo[i], hi[i] = _floats(e)
        else:
            lo[i], hi[i] = y[i] - float(e), y[i] + float(e)
    return lo, hi


# --------------------------------------------------------------------------- generic drawing


def _draw_xy(ax: Axes, fig: Figure) -> None:
    """line / step / cdf (precomputed curve) / scatter."""
    for i, s in enumerate(fig.series):
        color = PALETTE[i % len(PALETTE)]
        cat = _is_categorical(s.x)
        xs: Any = _categories(s.x) if cat else _floats(s.x)
        y = _floats(s.y)
        if fig.kind == "scatter":
            _draw_scatter(ax, s, xs, y, color)
            continue
        if not cat:
            xs, y = thin(xs, y)
        if fig.kind in ("step", "cdf"):
            ax.step(xs, y, where="post", label=s.name, color=color, lw=1.5)
        else:
            ax.plot(xs, y, label=s.name, color=color, lw=1.5, marker="o" if len(y) <= 30 else None, ms=3)
        bounds = _interval(s, _floats(s.y))
        if bounds is not None and not cat:
            ax.fill_between(_floats(s.x), *bounds, color=color, alpha=0.18, lw=0)


def _draw_scatter(ax: Axes, s: Series, xs: Any, y: np.ndarray, color: str) -> None:
    raster = len(y) > MAX_VECTOR_MARKERS
    size = 10 if len(y) <= 500 else 3
    groups = s.extra.get("color_by")
    if groups is not None and len(groups) == len(y):
        labels = _categories(groups)
        for j, g in enumerate(dict.fromkeys(labels)):
            m = np.array([lab == g for lab in labels])
            ax.scatter(np.asarray(xs, dtype=object)[m] if isinstance(xs, list) else xs[m], y[m],
                       s=size, alpha=0.7, color=PALETTE[j % len(PALETTE)], label=f"{s.name}: {g}",
                       rasterized=raster, lw=0)
    else:
        ax.scatter(xs, y, s=size, alpha=0.7, color=color, label=s.name, rasterized=raster, lw=0)
    bounds = _interval(s, y)
    if bounds is not None and not isinstance(xs, list):
        lo, hi = bounds
        ax.errorbar(xs, y, yerr=np.nan_to_num(np.vstack([y - lo, hi - y]).clip(min=0)), fmt="none", ecolor=color, alpha=0.6, lw=1)


def _draw_bar(ax: Axes, fig: Figure) -> None:
    """Grouped bars: one group per x category, one bar per series."""
    cats = list(dict.fromkeys(c for s in fig.series for c in _categories(s.x)))
    pos = {c: i for i, c in enumerate(cats)}
    n = max(len(fig.series), 1)
    width = 0.8 / n
    for i, s in enumerate(fig.series):
        xs = np.array([pos[c] for c in _categories(s.x)], dtype=float) - 0.4 + width * (i + 0.5)
        y = _floats(s.y)
        bounds = _interval(s, y)
        yerr = None
        if bounds is not None:
            lo, hi = bounds
            # a bound on the wrong side of its bar (a CI that excludes the point) clips to 0
            # as nested lists: matplotlib's bar() turns a (2, n) array into a NumPy
            # deprecation (array-to-scalar) that will become an error
            yerr = np.nan_to_num(np.vstack([y - lo, hi - y]).clip(min=0)).tolist()
        ax.bar(xs, y, width=width * 0.92, label=s.name, color=PALETTE[i % len(PALETTE)],
               yerr=yerr, capsize=2 if yerr is not None else 0, ecolor="#333")
    ax.set_xticks(range(len(cats)), cats, rotation=30 if len(cats) > 6 else 0,
                  ha="right" if len(cats) > 6 else "center")
    ax.grid(axis="x", visible=False)


def _draw_hist(ax: Axes, fig: Figure) -> None:
    for i, s in enumerate(fig.series):
        color = PALETTE[i % len(PALETTE)]
        if s.y and len(s.y) == len(s.x):  # already binned: x = bin centre, y = count
            ax.bar(_floats(s.x), _floats(s.y), label=s.name, color=color, alpha=0.75)
            continue
        v = _floats(s.x)
        v = v[np.isfinite(v)]
        if len(v):
            ax.hist(v, bins=min(50, max(5, int(np.sqrt(len(v))))), label=s.name, color=color,
                    alpha=0.6 if len(fig.series) > 1 else 0.85, histtype="stepfilled")


def _draw_gantt(ax: Axes, fig: Figure, height_pts: float) -> None:
    """One horizontal bar per point: from x to extra["x_end"] on row y. Rows are the y
    values (numbers, or labels in order of first appearance); row 0 at the top."""
    rows_all = [v for s in fig.series for v in s.y]
    labels: list[str] | None = None
    if _is_categorical(rows_all):
        labels = list(dict.fromkeys(_categories(rows_all)))
        index = {c: i for i, c in enumerate(labels)}
    n_rows = len(labels) if labels is not None else len({v for v in rows_all if v is not None})
    lw = float(np.clip(0.8 * height_pts / max(n_rows, 1), 0.3, 9.0))
    for i, s in enumerate(fig.series):
        end = s.extra.get("x_end")
        if end is None or not len(s.x):
            continue
        y = (np.array([index[c] for c in _categories(s.y)], dtype=float) if labels is not None
             else _floats(s.y))
        x0, x1 = _floats(s.x), _floats(end)
        ok = np.isfinite(x0) & np.isfinite(x1) & np.isfinite(y)
        color = PHASE_COLORS.get(s.name.split(" ")[0].lower(), PALETTE[i % len(PALETTE)])
        ax.hlines(y[ok], x0[ok], x1[ok], colors=color, lw=lw, label=s.name)
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    if labels is not None and len(labels) <= 40:
        ax.set_yticks(range(len(labels)), labels)
    elif labels is not None:
        ax.set_yticks([])


def draw_figure(fig: Figure, dom_id: str, width: float = 5.2, height: float = 3.2,
                legend: bool = True) -> str:
    """Any analysis Figure as inline SVG, drawn by its ``kind``. An unknown kind is drawn
    as lines (and says so) rather than failing the whole report."""
    kind = fig.kind if fig.kind in KNOWN_KINDS else "line"
    if kind == "gantt":
        n_rows = len({str(v) for s in fig.series for v in s.y})
        height = float(np.clip(1.2 + 0.018 * n_rows, 2.5, 9.0))
    with matplotlib.rc_context(RC):
        mfig = _new_figure(width, height)
        ax = mfig.add_subplot()
        has_data = any(len(s.x) for s in fig.series)
        if not has_data:
            _no_data(ax)
        elif kind == "bar":
            _draw_bar(ax, fig)
        elif kind == "hist":
            _draw_hist(ax, fig)
        elif kind == "gantt":
            _draw_gantt(ax, fig, height * 72 * 0.8)
        elif kind == "cdf" and fig.series and not any(len(s.y) for s in fig.series):
            _draw_xy(ax, _cdf_of_raw(fig))
        else:
            _draw_xy(ax, fig)
        if kind == "cdf":
            ax.set_ylim(0, 1.01)
            xs = np.concatenate([_floats(s.x) for s in fig.series if not _is_categorical(s.x)] or [np.empty(0)])
            if _use_log(xs):
                ax.set_xscale("log")
        ax.set_xlabel(fig.x_label + (" (log scale)" if ax.get_xscale() == "log" else ""))
        ax.set_ylabel(fig.y_label)
        if fig.kind not in KNOWN_KINDS:
            ax.set_title(f"(unknown figure kind {fig.kind!r}, drawn as lines)", fontsize=8, color="#a33")
        if legend and has_data and (len(fig.series) > 1 or kind == "gantt" or any(
                s.extra.get("color_by") is not None for s in fig.series)):
            ax.legend(loc="best")
        return to_svg(mfig, dom_id)


def _cdf_of_raw(fig: Figure) -> Figure:
    """A cdf Figure whose series carry raw values in x (no y): compute the curves."""
    series = []
    for s in fig.series:
        x, p = ecdf(_floats(s.x))
        series.append(Series(s.name, list(x), list(p)))
    return Figure(fig.id, fig.title, "cdf", fig.x_label, fig.y_label, series, fig.notes)


# --------------------------------------------------------------------------- run figures

CDF_METRICS = (
    ("ttft", "TTFT", "time to first token, reasoning included"),
    ("ttfvt", "TTFVT", "time to first visible (answer) token: what a user waits"),
    ("e2e", "E2E", "end-to-end latency of the request"),
)


def _ok(requests: pa.Table) -> pa.Table:
    return requests.filter(pc.equal(requests["status"], "ok"))


def latency_cdf_figures(runs: Sequence[RunData]) -> list[Figure]:
    """One CDF per latency metric (TTFT, TTFVT, E2E), one curve per run (ok requests)."""
    per_run = [request_metrics(_ok(r.requests)) for r in runs]
    figures = []
    for key, title, note in CDF_METRICS:
        series = []
        for run, metrics in zip(runs, per_run, strict=True):
            x, p = ecdf(metrics[key])
            n = int(np.isfinite(metrics[key]).sum())
            series.append(Series(f"{run.label} (n={n:,})", x.tolist(), p.tolist()))
        figures.append(Figure(f"cdf-{key}", f"{title} CDF", "cdf", f"{title} (s)",
                              "fraction of requests", series, note))
    return figures


def gantt_figure(run: RunData, max_rows: int = GANTT_MAX_ROWS) -> Figure:
    """The run as one row per request (by send time): waiting for the first token,
    thinking, answering; failed requests in red.

    Capped at ``max_rows`` consecutive requests (send order) around the slowest one, and
    the notes say so. A window and not a sample of the whole run: over a long run the
    bars of a sample shrink to dots on a diagonal, while a window keeps the overlap,
    the phases and the worst straggler readable (the timeline figure covers the whole
    run)."""
    req = run.requests
    sent, first, vis, r_end, done = (
        _column(req, c) for c in ("sent_s", "first_token_s", "first_visible_s", "reasoning_end_s", "done_s")
    )
    ok = pc.fill_null(pc.equal(req["status"], "ok"), False).to_numpy(zero_copy_only=False)
    order = np.argsort(np.where(np.isfinite(sent), sent, np.inf), kind="stable")
    n = len(order)
    note = f"{n:,} requests, one row each, in send order."
    if n > max_rows:
        e2e = np.where(np.isfinite(done - sent), done - sent, -np.inf)
        worst = int(np.flatnonzero(order == int(np.argmax(e2e)))[0])
        start = int(np.clip(worst - max_rows // 2, 0, n - max_rows))
        order = order[start : start + max_rows]
        note = (f"Showing requests {start + 1:,}-{start + max_rows:,} of {n:,} in send order "
                f"(capped at {max_rows:,}): the window around the slowest request "
                f"(E2E {float(e2e.max()):.1f} s).")
    rows = np.arange(len(order), dtype=float)
    s, f, v, re_, d, okk = (a[order] for a in (sent, first, vis, r_end, done, ok))
    think_end = np.where(np.isfinite(re_), re_, v)
    think_end = np.where(np.isfinite(think_end), think_end, d)  # truncated while thinking
    ans_start = np.where(np.isfinite(v), v, np.nan)
    first_or_done = np.where(np.isfinite(f), f, d)

    def series(name: str, x0: np.ndarray, x1: np.ndarray, mask: np.ndarray) -> Series:
        m = mask & np.isfinite(x0) & np.isfinite(x1) & (x1 >= x0)
        return Series(name, x0[m].tolist(), rows[m].tolist(), {"x_end": x1[m].tolist()})

    return Figure(
        "gantt", f"Requests over time: {run.label}", "gantt", "time since run start (s)",
        "request (send order)",
        [
            series("waiting (sent → first token)", s, first_or_done, okk),
            series("thinking (first token → reasoning end)", f, think_end, okk),
            series("answer (first visible → done)", ans_start, d, okk),
            series("error", s, d, ~okk),
        ],
        note,
    )


def _metric_series(timeline: pa.Table, source: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    mask = pc.and_(pc.equal(timeline["source"], source), pc.equal(timeline["metric"], metric))
    rows = timeline.filter(mask).sort_by("t_s")
    return (rows["t_s"].to_numpy(zero_copy_only=False).astype(float),
            rows["value"].to_numpy(zero_copy_only=False).astype(float))


def in_flight(requests: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Requests the client had open (sent, not done) over time, as a step series."""
    sent = _column(requests, "sent_s")
    done = _column(requests, "done_s")
    sent = sent[np.isfinite(sent)]
    done = done[np.isfinite(done)]
    t = np.concatenate([sent, done])
    step = np.concatenate([np.ones(len(sent)), -np.ones(len(done))])
    order = np.argsort(t, kind="stable")
    return t[order], np.cumsum(step[order])


def _preemption_rug(ax: Axes, t: np.ndarray, counter: np.ndarray, bins: int = 300) -> None:
    """Preemptions as red ticks along the top of the KV panel, one per time bin that had
    any (thousands of vertical lines would hide the KV curve)."""
    if len(counter) < 2:
        return
    steps = np.diff(counter)
    total = int(steps.clip(min=0).sum())
    at = t[1:][steps > 0]
    if not len(at):
        return
    edges = np.linspace(float(t[0]), float(t[-1]), bins + 1)
    counts, _ = np.histogram(at, edges)
    hit = counts > 0
    centres = (edges[:-1] + edges[1:]) / 2
    ax.plot(centres[hit], np.full(int(hit.sum()), 102.0), "|", color=PHASE_COLORS["error"],
            ms=8, mew=1.2, label=f"preemptions ({total:,})")


def timeline_svg(run: RunData, dom_id: str, width: float = 9.6) -> str:
    """KV-cache usage (with the 90 % line and preemptions) over the requests running and
    waiting in the engine and the requests the client had in flight; GPU memory when
    sampled. Shared time axis, seconds since the run's start."""
    tl = run.timeline
    kv_t, kv = _metric_series(tl, names.SOURCE_ENGINE, names.KV_CACHE_USAGE)
    run_t, running = _metric_series(tl, names.SOURCE_ENGINE, names.REQUESTS_RUNNING)
    wait_t, waiting = _metric_series(tl, names.SOURCE_ENGINE, names.REQUESTS_WAITING)
    pre_t, pre = _metric_series(tl, names.SOURCE_ENGINE, names.PREEMPTIONS_TOTAL)
    mem_t, mem = _metric_series(tl, names.SOURCE_GPU, names.GPU_MEMORY_USED_BYTES)
    fl_t, fl = in_flight(run.requests)
    panels = 3 if len(mem) else 2
    with matplotlib.rc_context(RC):
        mfig = _new_figure(width, 1.7 * panels + 0.4)
        axes = mfig.subplots(panels, 1, sharex=True)
        ax_kv, ax_rq = axes[0], axes[1]
        if len(kv):
            x, y = thin(kv_t, kv * 100)
            ax_kv.fill_between(x, y, color=PALETTE[0], alpha=0.15, lw=0, step="post")
            ax_kv.step(x, y, where="post", color=PALETTE[0], lw=1.2, label="KV cache usage")
            ax_kv.axhline(90, color="#999", ls="--", lw=0.8, label="90 %")
            ax_kv.set_ylim(0, 105)
            _preemption_rug(ax_kv, pre_t, pre)
            ax_kv.legend(**OUTSIDE)
        else:
            _no_data(ax_kv, "no KV-cache samples (the engine exposed no /metrics)")
        ax_kv.set_ylabel("KV cache (%)")
        for t, v, label, color in ((run_t, running, "running (engine)", PALETTE[2]),
                                   (wait_t, waiting, "waiting (engine)", PALETTE[1])):
            if len(v):
                x, y = thin(t, v)
                ax_rq.step(x, y, where="post", color=color, lw=1.2, label=label)
        if len(fl):
            x, y = thin(fl_t, fl)
            ax_rq.step(x, y, where="post", color="#555", lw=0.9, ls=":", label="in flight (client)")
        ax_rq.set_ylabel("requests")
        ax_rq.legend(**OUTSIDE)
        if panels == 3:
            x, y = thin(mem_t, mem / 2**30)
            axes[2].step(x, y, where="post", color=PALETTE[5], lw=1.2)
            axes[2].set_ylabel("GPU memory (GiB)")
        axes[-1].set_xlabel("time since run start (s)")
        return to_svg(mfig, dom_id)
