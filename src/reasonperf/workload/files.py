"""Read a local table (JSONL, JSON array, CSV or Parquet) into a list of row dicts.

CSV cells are read as text on purpose: type inference would turn an AIME answer such as
``"025"`` into the integer 25 and change the gold. JSONL is read line by line (not with
pyarrow's JSON reader) so that a column whose type varies between rows (an answer that is
sometimes a number, sometimes text) loads as written instead of failing.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import orjson

from reasonperf.errors import UsageError

TABLE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".pq")


def is_table_path(text: str) -> bool:
    """True when ``text`` looks like a path to a table file (by extension)."""
    return text.lower().endswith(TABLE_SUFFIXES)


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSONL/JSON/CSV/Parquet file, chosen by extension.

    Raises UsageError naming the path when the file is missing, unreadable, malformed or
    of an unknown kind.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise UsageError(
            f"cannot read '{p}': unknown file kind {suffix or '(no extension)'!r}; "
            "use a .jsonl, .json, .csv or .parquet file"
        )
    if not p.is_file():
        raise UsageError(f"cannot read '{p}': no such file")
    try:
        if suffix in (".jsonl", ".ndjson"):
            rows = _read_jsonl(p)
        elif suffix == ".json":
            rows = _read_json(p)
        elif suffix == ".csv":
            with p.open(newline="", encoding="utf-8") as fh:
                rows = [dict(r) for r in csv.DictReader(fh)]
        else:
            import pyarrow.parquet as pq

            rows = pq.read_table(p).to_pylist()
    except UsageError:
        raise
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        # pyarrow's ArrowInvalid is a ValueError; orjson's JSONDecodeError too.
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot read '{p}': {msg}") from None
    if not rows:
        raise UsageError(f"'{p}' has no rows")
    return rows


def _read_jsonl(p: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with p.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                raise UsageError(f"cannot read '{p}': line {lineno} is not valid JSON") from None
            if not isinstance(obj, dict):
                raise UsageError(f"cannot read '{p}': line {lineno} is not a JSON object")
            rows.append(obj)
    return rows


def _read_json(p: Path) -> list[dict[str, Any]]:
    try:
        obj = orjson.loads(p.read_bytes())
    except orjson.JSONDecodeError:
        # A .json file holding one object per line is common enough to accept.
        return _read_jsonl(p)
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise UsageError(f"cannot read '{p}': expected a JSON array of objects")
    return obj


def cell_text(value: Any) -> str | None:
    """A cell as text: None/NaN/blank -> None, 18.0 -> "18", other values via str()."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None
