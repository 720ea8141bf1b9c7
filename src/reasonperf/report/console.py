"""The console summary: the numbers a user reads first, from summary.json."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from reasonperf.metrics import catalog

LATENCY_ROWS = tuple(m.name for m in catalog.by_group("latency"))


def _f(v: Any, unit: str = "", digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}{unit}"
    return f"{v}{unit}"


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v * 1000:,.1f}"


def _left_out(block: dict[str, Any]) -> str:
    excluded = block.get("excluded") or {}
    return ", ".join(f"{k} {v}" for k, v in excluded.items()) or "-"


def _with_coverage(tps: Any, coverage: Any) -> str:
    text = _f(tps, digits=1)
    if coverage is not None and coverage < 1:
        text += f" (over {coverage:.0%} of requests: lower bound)"
    return text


def render_summary(summary: dict[str, Any], console: Console, run_dir: str | None = None) -> None:
    run = summary.get("run", {})
    req = summary["requests"]
    title = f"{run.get('name') or 'run'} · {run.get('model') or '?'} · {run.get('workload')} · {run.get('arrival')}"
    console.print(f"[bold]{title}[/bold]")
    console.print(
        f"requests {req['total']} · ok {req['ok']} · errors {req['errors']} "
        f"{req['error_types'] or ''} · finish {req['finish_reasons']}"
    )
    rl = req.get("rate_limited") or {}
    if rl.get("count"):
        console.print(
            f"rate limited (HTTP 429): {rl['count']} of {req['total']} ({rl['share']:.1%}), "
            f"Retry-After median {_f(rl.get('retry_after_s_median'), ' s', 1)}; not retried"
        )

    lat = Table(title="latency per request (ms)", show_edge=False)
    for col in ("metric", "n", "mean", "p50", "p90", "p95", "p99", "max", "left out"):
        lat.add_column(col, justify="left" if col in ("metric", "left out") else "right")
    for name in LATENCY_ROWS:
        d = summary["latency"].get(name)
        if not d:
            continue
        label = catalog.get(name).label
        if not d.get("count"):
            if d.get("requests"):  # measured nothing: say so instead of a row of zeros
                lat.add_row(label, "0", *(["n/a"] * 6), _left_out(d))
            continue
        n = str(d.get("requests_qualified", d["count"])) if name == "itl" else str(d["count"])
        lat.add_row(label, n, *(_ms(d.get(k)) for k in ("mean", "p50", "p90", "p95", "p99", "max")),
                    _left_out(d))
    console.print(lat)

    tp = summary["throughput"]
    tok = summary["tokens"]
    t = Table(title="throughput and tokens", show_header=False, show_edge=False)
    t.add_column("k")
    t.add_column("v", justify="right")
    t.add_row("window (s)", _f(tp.get("window_s"), digits=2))
    t.add_row("requests/s", _f(tp.get("request_throughput")))
    cov = tp.get("token_coverage")
    t.add_row("output tok/s", _with_coverage(tp.get("output_tps"), cov))
    t.add_row("visible (answer) tok/s", _with_coverage(tp.get("visible_tps"), cov))
    t.add_row("paper-compatible tok/s", _with_coverage(tp.get("paper_tps"), cov))
    if "goodput" in tp:
        t.add_row(f"goodput req/s (SLO {tp['slo']})", _f(tp.get("goodput")))
        t.add_row("SLO attainment", _f(tp.get("slo_attainment")))
        if "correct_goodput" in tp:
            t.add_row("correct goodput req/s", _f(tp.get("correct_goodput")))
    t.add_row("tokens prompt / completion", f"{tok.get('prompt')} / {tok.get('completion')}")
    t.add_row("tokens reasoning / answer", f"{tok.get('reasoning')} / {tok.get('answer')}")
    if tok.get("coverage") is not None and tok["coverage"] < 1:
        t.add_row("token count coverage", f"{tok['coverage']:.0%} of ok requests")
    t.add_row("token count source", str(tok.get("count_source")))
    chk = tok.get("check", {})
    if not chk.get("checked"):
        verdict = "not checked (no second count to compare)"
    elif chk.get("mismatches"):
        verdict = f"{chk['mismatches']} mismatches of {chk['checked']} checked"
    else:
        verdict = f"ok ({chk['checked']} checked)"
    t.add_row("token counts agree (chunks / usage)", verdict)
    console.print(t)

    srv = summary.get("server") or {}
    if any(v is not None for v in srv.values()):
        s = Table(title="server (engine /metrics)", show_header=False, show_edge=False)
        s.add_column("k")
        s.add_column("v", justify="right")
        for k, v in srv.items():
            if v is not None and not isinstance(v, (dict, list)):
                s.add_row(k, _f(v))
        console.print(s)

    truth = summary.get("truth")
    if truth:
        tr = Table(title="truth against the engine (client / engine)", show_header=False,
                   show_edge=False)
        tr.add_column("k")
        tr.add_column("v", justify="right")
        tok = truth["tokens"]
        tr.add_row("completion tokens client / engine", f"{_f(tok.get('client'))} / {_f(tok.get('engine'))}")
        req = truth["requests"]
        tr.add_row("requests client / engine", f"{_f(req.get('client'))} / {_f(req.get('engine'))}")
        for key, label in (("ttft", "TTFT"), ("e2e", "E2E")):
            d = truth[key]
            if d.get("ratio") is None:
                continue
            tr.add_row(f"mean {label} client / engine (ms)",
                       f"{_ms(d['client_mean_s'])} / {_ms(d['engine_mean_s'])} = {d['ratio']:.3f}"
                       f" (offset {_ms(d['offset_s'])})")
        console.print(tr)

    bud = summary.get("budget")
    if bud:
        console.print(
            f"thinking budget {bud['budget']} ({bud['field']}): {bud['violations']} of "
            f"{bud['requests']} over it (worst +{_f(bud['worst_excess'])}), "
            f"{bud['ended_in_thinking']} ended in thinking, {bud['no_answer']} without an answer",
            markup=False)
    rep = summary.get("replay")
    if rep:
        err = rep.get("prompt_tokens_error") or {}
        console.print(f"replay: {rep['mismatches']} of {rep['requests']} forced lengths missed; "
                      f"prompt tokens {_f(err.get('mean'))} from target on average", markup=False)
    acc = summary.get("accuracy")
    if acc:
        a = acc["overall"]
        n = a["n_min"] if a["n_min"] == a["n_max"] else f"{a['n_min']}-{a['n_max']}"
        line = (
            f"accuracy avg@{n}: {_f(a['avg_at_n'])} ± {_f(a['se'])} "
            f"(standard error over {a['n_problems']} problems, {a['n_samples']} samples)"
        )
        extra = f"cons@n {_f(a['cons_at_n'])} · pass@k {a['pass_at_k']} · truncated {_f(a['truncation_rate'])} · no answer extracted {_f(a['extraction_failure_rate'])}"
        console.print(f"[bold]{line}[/bold]")
        console.print(extra)
    for w in summary.get("warnings") or []:
        console.print(f"[yellow]warning:[/yellow] {w}")
    if run_dir:
        console.print(f"run directory: {run_dir}")
