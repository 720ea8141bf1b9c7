"""Token-count check: compare, per request, the token counts that come from different
sources and can therefore disagree.

* ``chunk_sum_vs_usage``: the sum of the per-chunk counts (continuous usage) against the
  final usage's completion_tokens. Equal on an honest server; a gap means one of the two
  is wrong, and the record's split then falls back to another source.
* ``usage_reasoning_vs_chunks``: the server's ``completion_tokens_details.reasoning_tokens``
  against the reasoning tokens counted from per-chunk deltas (requests whose split came
  from continuous usage). A server's reasoning count may leave out the ``<think>`` and
  ``</think>`` tokens, which our per-chunk counts attribute to the chunk they rode on, so
  a difference of up to ``TAG_TOLERANCE`` tokens is no mismatch.

``reasoning + answer = completion`` is deliberately not a check: the split produces it by
construction. A request where no two sources exist is not "ok" but unchecked; ``checked``
says how many requests had at least one comparison.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

TAG_TOLERANCE = 2  # <think> and </think>

CHECKS = {
    "chunk_sum_vs_usage": "sum of per-chunk token counts vs the final usage's completion_tokens",
    "usage_reasoning_vs_chunks": (
        "server usage reasoning_tokens vs reasoning tokens counted from per-chunk deltas "
        f"(within {TAG_TOLERANCE}: think tags)"
    ),
}
_COLUMNS = ("request_id", "token_count_source", "reasoning_tokens", "usage_completion_tokens",
            "usage_reasoning_tokens", "chunk_tokens_sum")
_MAX_EXAMPLES = 5


def _comparisons(row: dict[str, Any]) -> list[tuple[str, int, int, int]]:
    """(check, client count, server count, tolerance) for each comparison this row allows."""
    out = []
    chunk_sum, usage = row.get("chunk_tokens_sum"), row.get("usage_completion_tokens")
    if chunk_sum is not None and usage is not None:
        out.append(("chunk_sum_vs_usage", chunk_sum, usage, 0))
    counted, server = row.get("reasoning_tokens"), row.get("usage_reasoning_tokens")
    if row.get("token_count_source") == "continuous_usage" and None not in (counted, server):
        out.append(("usage_reasoning_vs_chunks", counted, server, TAG_TOLERANCE))
    return out


def _rows(table: pa.Table, size: int = 4096) -> Iterator[dict[str, Any]]:
    """The rows as dicts, a slice at a time (a million-request run never is one list)."""
    for start in range(0, table.num_rows, size):
        yield from table.slice(start, size).to_pylist()


def token_check(requests: pa.Table) -> dict[str, Any]:
    """Per-comparison counts of checked requests and mismatches, plus a few examples.

    ``mismatches`` counts requests with at least one disagreeing comparison; a table from
    before these columns existed checks nothing.
    """
    names = [c for c in _COLUMNS if c in requests.column_names]
    per_check = {name: {"checked": 0, "mismatches": 0} for name in CHECKS}
    checked = bad_requests = 0
    examples: list[dict[str, Any]] = []
    for row in _rows(requests.select(names)):
        comparisons = _comparisons(row)
        if comparisons:
            checked += 1
        bad = False
        for name, client, server, tolerance in comparisons:
            per_check[name]["checked"] += 1
            if abs(client - server) > tolerance:
                per_check[name]["mismatches"] += 1
                bad = True
                if len(examples) < _MAX_EXAMPLES:
                    examples.append({"request_id": row["request_id"], "check": name,
                                     "client": client, "server": server})
        bad_requests += bad
    return {
        "checked": checked,
        "requests": requests.num_rows,
        "mismatches": bad_requests,
        "comparisons": per_check,
        "definitions": dict(CHECKS),
        "examples": examples,
    }
