"""One metric catalogue: every number the summary, the report and compare show is
declared once, and docs/metrics.md is generated from it."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from reasonperf.analysis import compare
from reasonperf.metrics import catalog
from reasonperf.metrics.docs import render_metrics_doc
from reasonperf.metrics.summary import summarize
from reasonperf.records import REQUEST_SCHEMA
from reasonperf.report import console, html

ROOT = Path(__file__).resolve().parents[1]


def test_declarations_are_complete():
    for m in catalog.CATALOG:
        assert m.name and m.label and m.unit and m.definition, m
        assert m.direction in ("lower", "higher"), m
        assert callable(m.compute), m
    assert len({m.name for m in catalog.CATALOG}) == len(catalog.CATALOG)


def test_summary_latency_and_throughput_keys_are_catalogued():
    rows = [{n: None for n in REQUEST_SCHEMA.names} | dict(
        request_id="a", status="ok", sent_s=0.0, first_token_s=0.1, first_visible_s=0.2,
        reasoning_end_s=0.15, done_s=1.0, completion_tokens=10, reasoning_tokens=3,
        answer_tokens=7, scheduled_s=0.0)]
    s = summarize(pa.Table.from_pylist(rows, schema=REQUEST_SCHEMA), slo={"e2e": 2.0})
    names = {m.name for m in catalog.CATALOG}
    assert set(s["latency"]) <= names
    numeric = {k for k, v in s["throughput"].items() if isinstance(v, float) and k != "window_s"}
    assert numeric <= names, numeric - names
    assert set(s["metric_definitions"]) == names


def test_reports_and_compare_take_names_units_directions_from_the_catalogue():
    latency = [m.name for m in catalog.by_group("latency")]
    assert list(console.LATENCY_ROWS) == latency
    assert [k for k, _ in html.LATENCY_METRICS] == latency
    assert [label for _, label in html.LATENCY_METRICS] == [catalog.get(k).label for k in latency]
    for md in compare.METRICS:
        base = md.key.rsplit("_", 1)[0] if md.kind == "latency" else md.key
        m = catalog.get(base)
        assert md.label.startswith(m.label)
        if md.kind != "accuracy":  # compare formats a fraction by the unit ""
            assert md.unit == m.unit
        assert (md.kind == "latency") == (m.direction == "lower")


def test_docs_metrics_md_is_generated_from_the_catalogue():
    doc = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert doc == render_metrics_doc(), (
        "docs/metrics.md is out of date: run `python -m reasonperf.metrics.docs`")
    for m in catalog.CATALOG:
        assert f"`{m.name}`" in doc


def test_docs_records_md_lists_every_column():
    doc = (ROOT / "docs" / "records.md").read_text(encoding="utf-8")
    from reasonperf.records import CHUNK_SCHEMA, TIMELINE_SCHEMA

    for name in REQUEST_SCHEMA.names + CHUNK_SCHEMA.names + TIMELINE_SCHEMA.names:
        assert name in doc, f"docs/records.md does not describe column {name!r}"


def test_readme_links_the_docs_and_nothing_points_to_shared():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/metrics.md" in readme and "docs/records.md" in readme
    for path in [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("src/**/*.py")]:
        assert "../shared" not in path.read_text(encoding="utf-8"), path
