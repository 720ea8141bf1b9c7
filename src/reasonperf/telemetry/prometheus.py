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
    values: dict[str, list[float]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
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


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """GET ``url`` and parse it. Raises aiohttp errors, TimeoutError or ValueError.

    Parsing runs in a worker thread: a vLLM /metrics page is hundreds of histogram lines
    and the event loop it would block also timestamps the streamed chunks.
    """
    async with session.get(url) as resp:
        resp.raise_for_status()
        text = await resp.text()
    return await asyncio.to_thread(parse_metrics, text)
