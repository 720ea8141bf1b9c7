"""Read an engine's Prometheus /metrics text into the unified vocabulary (names.py)."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from reasonperf.telemetry.names import (
    ENGINE_METRICS,
    KNOWN_ENGINE_NAMES,
    normalize_sample_name,
)


def parse_metrics(text: str) -> dict[str, float]:
    """Unified metric -> value for one /metrics text; unknown names are ignored.

    Works on sample names rather than family names because the text parser names a
    counter family with or without ``_total`` depending on the TYPE line, and untyped
    exporters give no family type at all. NaN samples (an unset gauge) are dropped.
    Raises ValueError on text that is not the Prometheus exposition format.
    """
    known = _known_sample_lines(text)
    values: dict[str, list[float]] = defaultdict(list)
    # Parse only the samples we map: a vLLM page is ~50 KB, mostly histogram buckets, and
    # parsing all of it costs ~15 ms of CPU per scrape, which a client starved for CPU by
    # the engine beside it (2-core machines) cannot spare at a 0.1 s interval. Text with no
    # known sample is parsed whole, so that non-Prometheus text still raises ValueError.
    for family in text_string_to_metric_families(known if known else text):
        for sample in family.samples:
            name = normalize_sample_name(sample.name)
            if name in KNOWN_ENGINE_NAMES and not math.isnan(sample.value):
                values[name].append(float(sample.value))

    out: dict[str, float] = {}
    for metric in ENGINE_METRICS:
        if metric.unified in out:
            continue  # an earlier engine's map already gave it
        for source in metric.sources:
            found = values.get(source)
            if found:
                total = math.fsum(found)
                out[metric.unified] = total if metric.aggregation == "sum" else total / len(found)
                break
    return out


def _known_sample_lines(text: str) -> str:
    """The sample lines whose metric name is one we map (comments dropped: the parser
    needs no TYPE line, and names are normalised for ``_total`` anyway)."""
    keep = []
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        brace, space = line.find("{"), line.find(" ")
        cut = min(i for i in (brace, space, len(line)) if i != -1)
        if normalize_sample_name(line[:cut]) in KNOWN_ENGINE_NAMES:
            keep.append(line)
    return "\n".join(keep) + "\n" if keep else ""


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """GET ``url`` and parse it. Raises aiohttp errors, TimeoutError or ValueError.

    Parsing runs in a worker thread: a vLLM /metrics page is hundreds of histogram lines
    and the event loop it would block also timestamps the streamed chunks.
    """
    async with session.get(url) as resp:
        resp.raise_for_status()
        text = await resp.text()
    return await asyncio.to_thread(parse_metrics, text)
