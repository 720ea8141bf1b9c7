"""Graded request rows as small objects for grading.stats (a run of any size).

``Table.to_pylist()`` makes a dict of every column per row: about 1.6 kB a row, 1.6 GB
for a graded run of a million requests. The accuracy summary reads ten columns, so each
row here is a slotted object with just those (``get`` and ``[]`` as on a dict), and a
string column's values are decoded once (dictionary encoding) and shared between rows.
The stats functions are unchanged, so every number they give is the same.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

STATS_COLUMNS = ("dataset", "problem_id", "sample_index", "difficulty", "domain", "correct",
                 "extracted_answer", "truncated", "completion_tokens", "reasoning_tokens")
_SLICE = 4096


class StatsRow:
    """One graded row: the STATS_COLUMNS, read like a dict (a missing column is None)."""

    __slots__ = STATS_COLUMNS

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in STATS_COLUMNS else default

    def __getitem__(self, key: str) -> Any:
        if key not in STATS_COLUMNS:
            raise KeyError(key)
        return getattr(self, key)


def _values(column: pa.ChunkedArray) -> tuple[list[Any], pa.ChunkedArray] | None:
    """(decoded dictionary, indices) for a string column; None for any other type."""
    if not pa.types.is_string(column.type):
        return None
    encoded = pc.dictionary_encode(column).combine_chunks()
    return encoded.dictionary.to_pylist(), encoded.indices


def stats_rows(table: pa.Table) -> list[StatsRow]:
    """The rows of ``table`` as StatsRow, in order (built a slice at a time)."""
    names = [c for c in STATS_COLUMNS if c in table.column_names]
    decoded = {n: _values(table.column(n)) for n in names}
    out: list[StatsRow] = []
    for start in range(0, table.num_rows, _SLICE):
        cols: dict[str, list[Any]] = {}
        for n in names:
            dec = decoded[n]
            if dec is None:
                cols[n] = table.column(n).slice(start, _SLICE).to_pylist()
            else:
                words, idx = dec
                cols[n] = [None if i is None else words[i]
                           for i in idx.slice(start, _SLICE).to_pylist()]
        for i in range(min(_SLICE, table.num_rows - start)):
            row = StatsRow()
            for n in STATS_COLUMNS:
                setattr(row, n, cols[n][i] if n in cols else None)
            out.append(row)
    return out
