"""The markdown summary (``reasonperf report --format md``): the HTML report's tables and
findings as GitHub-flavoured markdown, without figures (they live in the HTML)."""

from __future__ import annotations

from collections.abc import Sequence

from reasonperf.analysis.base import AnalysisResult, RunData
from reasonperf.errors import UsageError
from reasonperf.report.html import (
    LATENCY_COLUMNS,
    flatten_numbers,
    fmt_value,
    headline_rows,
    latency_rows,
    provenance,
    run_summary,
)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(columns: Sequence[object], rows: Sequence[Sequence[object]]) -> str:
    head = "| " + " | ".join(_cell(c) for c in columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join([head.replace("|  |", "| |"), sep, *body])


def render_markdown(runs: list[RunData], results: list[AnalysisResult]) -> str:
    if not runs:
        raise UsageError("report: no runs given; pass one or more run directories")
    summaries = [run_summary(r) for r in runs]
    labels = [r.label for r in runs]
    out = [f"# reasonperf report: {', '.join(labels)}", ""]

    out += ["## Summary", ""]
    rows: list[list[str]] = []
    section = ""
    for row in headline_rows(summaries):
        if row.section != section:
            section = row.section
            rows.append([f"**{section}**", *([""] * len(labels))])
        rows.append([row.label, *row.cells])
    out += [md_table(["", *labels], rows), ""]

    for run, summary in zip(runs, summaries, strict=True):
        out += [f"### Latency: {run.label}", "",
                md_table(LATENCY_COLUMNS, latency_rows(summary)), ""]

    if results:
        out += ["## Analyses", ""]
    for r in results:
        out += [f"### {r.title} (`{r.name}`)", ""]
        if r.skipped:
            out += [f"*Skipped:* {r.skipped}", ""]
            continue
        out += [f"- {f}" for f in r.findings]
        if r.findings:
            out.append("")
        for t in r.tables:
            out += [f"**{t.title}**", "", md_table(t.columns, [[fmt_value(c) for c in row] for row in t.rows]), ""]
        if r.numbers:
            out += [md_table(["number", "value"], flatten_numbers(r.numbers)), ""]
        if r.figures:
            out += ["Figures (in the HTML report): " + "; ".join(f.title for f in r.figures), ""]

    out += ["## Provenance", ""]
    for run in runs:
        out += [f"### {run.label}", ""]
        out += [f"- **{k}**: {'`' + v + '`' if k == 'command' else v}" for k, v in provenance(run)]
        out.append("")
    return "\n".join(out).rstrip() + "\n"
