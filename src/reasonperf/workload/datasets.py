"""Workloads by name (the ``DATASETS`` registry) or by path to a local table.

``load_workload("gsm8k", data_file=...)`` reads a local copy; without ``data_file`` the
named benchmarks come from the Hugging Face hub through the optional ``datasets`` package,
and when that is not possible the error says how to pass a local file instead. Any
JSONL/CSV/Parquet path works as a workload too, with its columns detected or given by
``field_map``.

A loader receives a ``LoadContext`` and returns problems; ``limit`` is applied afterwards.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reasonperf.errors import UsageError
from reasonperf.records import Problem
from reasonperf.registry import Registry
from reasonperf.workload import chat, procedural, replay
from reasonperf.workload.files import cell_text, is_table_path, read_rows


@dataclass(frozen=True)
class LoadContext:
    name: str
    data_file: str | None = None
    field_map: dict[str, str] = field(default_factory=dict)
    limit: int | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)


Loader = Callable[[LoadContext], list[Problem]]

DATASETS: Registry[Loader] = Registry("workload")

FIELD_MAP_ROLES = ("prompt", "answer", "id", "difficulty", "domain")
FIELD_MAP_FIX = "--field-map prompt=COL,answer=COL"

# Column candidates per role for files of unknown origin (first present wins).
PROMPT_COLUMNS = ("question", "problem", "prompt")
ANSWER_COLUMNS = ("answer", "gold")  # never "solution": that is a worked derivation
ID_COLUMNS = ("id", "idx", "unique_id", "problem_id")
DIFFICULTY_COLUMNS = ("difficulty", "level")
DOMAIN_COLUMNS = ("domain",)

_INTEGER = re.compile(r"[+-]?\d+")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}\b)")


# ----------------------------------------------------------------- public entry point


def load_workload(
    name_or_path: str,
    *,
    data_file: str | None = None,
    field_map: dict[str, str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
) -> list[Problem]:
    """Problems of a registered workload or of a local table file, the first ``limit``."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be >= 1 (got {limit})")
    fmap = dict(field_map or {})
    unknown = sorted(set(fmap) - set(FIELD_MAP_ROLES))
    if unknown:
        raise UsageError(
            f"--field-map key {unknown[0]!r} is not known; use {', '.join(FIELD_MAP_ROLES)}"
        )
    ctx = LoadContext(
        name=name_or_path,
        data_file=data_file,
        field_map=fmap,
        limit=limit,
        seed=seed,
        options=dict(options or {}),
    )
    kind, sep, arg = name_or_path.partition(":")
    if sep and kind == replay.PREFIX and data_file is None:  # replay:lengths.json
        ctx = replace(ctx, name=kind, data_file=arg)
        name_or_path = kind
    if name_or_path in DATASETS:
        problems = DATASETS.get(name_or_path)(ctx)
    elif is_table_path(name_or_path) or Path(name_or_path).exists():
        if data_file is not None:
            raise UsageError(
                "--data-file is for named workloads; pass the file itself as the workload"
            )
        problems = load_table(ctx)
    else:
        known = ", ".join(DATASETS.names())
        raise UsageError(
            f"unknown workload {name_or_path!r}; choose one of: {known}, "
            "or pass a path to a .jsonl/.csv/.parquet file"
        )
    return problems[:limit] if limit is not None else problems


def parse_field_map(text: str | None) -> dict[str, str]:
    """``"prompt=q,answer=a"`` -> ``{"prompt": "q", "answer": "a"}`` (the CLI's syntax)."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        role, sep, col = part.partition("=")
        if not sep or not role.strip() or not col.strip():
            raise UsageError(
                f"--field-map entry {part!r} must look like ROLE=COLUMN, e.g. prompt=q"
            )
        out[role.strip()] = col.strip()
    return out


# ----------------------------------------------------------------- shared helpers


def _check_options(ctx: LoadContext, allowed: Sequence[str]) -> None:
    for key in ctx.options:
        if key not in allowed:
            choices = ", ".join(allowed) if allowed else "none"
            raise UsageError(
                f"workload option {key!r} does not apply to {ctx.name!r}; allowed: {choices}"
            )


def _resolve(
    ctx: LoadContext,
    columns: Sequence[str],
    role: str,
    candidates: Sequence[str],
    source: str,
    *,
    required: bool,
) -> str | None:
    """The column for ``role``: the field map's choice, else the first candidate present."""
    shown = ", ".join(columns)
    if role in ctx.field_map:
        col = ctx.field_map[role]
        if col not in columns:
            raise UsageError(
                f"column {col!r} (field map {role}) not found in {source} (columns: {shown}); "
                f"fix it with {FIELD_MAP_FIX}"
            )
        return col
    for col in candidates:
        if col in columns:
            return col
    if required:
        looked = "/".join(repr(c) for c in candidates)
        raise UsageError(
            f"column {looked} ({role}) not found in {source} (columns: {shown}); "
            f"pass {FIELD_MAP_FIX}"
        )
    return None


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows[:100]:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _problem_ids(rows: list[dict[str, Any]], id_col: str | None, source: str) -> list[str]:
    if id_col is None:
        return [str(i) for i in range(len(rows))]
    ids = [cell_text(r.get(id_col)) or str(i) for i, r in enumerate(rows)]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise UsageError(
            f"column {id_col!r} in {source} repeats id {dup!r}; "
            "map a unique column with --field-map id=COL"
        )
    return ids


def _prompt_text(row: dict[str, Any], col: str, index: int, source: str) -> str:
    text = row.get(col)
    if text is None or not str(text).strip():
        raise UsageError(f"row {index} of {source} has an empty {col!r} (prompt) column")
    return str(text)


def gsm8k_final(answer: str | None) -> str | None:
    """The gold of a GSM8K solution: the text after the last ``####``, without commas."""
    if answer is None:
        return None
    tail = answer.rsplit("####", 1)[-1].strip()
    return _THOUSANDS.sub("", tail)


def _math_level(value: Any) -> str | None:
    text = cell_text(value)
    if text is None:
        return None
    return text.removeprefix("Level ").strip()


# ----------------------------------------------------------------- named benchmarks


@dataclass(frozen=True)
class HubSource:
    repo: str
    config: str | None
    split: str
    columns_hint: str  # for the "needs a local file" message


def _rows(ctx: LoadContext, hub: HubSource) -> tuple[list[dict[str, Any]], str]:
    """Rows from ``data_file`` when given, else from the hub; plus a label for messages."""
    if ctx.data_file is not None:
        return read_rows(ctx.data_file), f"'{ctx.data_file}'"
    need_file = (
        f"dataset {ctx.name!r} needs a local file: pass --data-file PATH "
        f"(JSONL/CSV/Parquet with {hub.columns_hint} columns) or pip install datasets "
        "with hub access"
    )
    try:
        hf = importlib.import_module("datasets")
    except ImportError:
        raise UsageError(need_file) from None
    split = str(ctx.options.get("split", hub.split))
    try:
        ds = hf.load_dataset(hub.repo, hub.config, split=split)
        rows = [dict(r) for r in ds]
    except Exception as exc:  # network, auth (gated sets), missing split: all say the same
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise UsageError(f"{need_file} (hub {hub.repo}: {reason})") from None
    return rows, f"hub {hub.repo}"


def _simple(
    ctx: LoadContext,
    hub: HubSource,
    *,
    prompt_cols: Sequence[str],
    id_cols: Sequence[str],
    gold: Callable[[Any], str | None],
    grader: str,
    difficulty: Callable[[dict[str, Any]], str | None],
    meta_cols: Sequence[str] = (),
) -> list[Problem]:
    _check_options(ctx, ("split",))
    rows, source = _rows(ctx, hub)
    cols = _columns(rows)
    p_col = _resolve(ctx, cols, "prompt", prompt_cols, source, required=True)
    a_col = _resolve(ctx, cols, "answer", ("answer",), source, required=True)
    i_col = _resolve(ctx, cols, "id", id_cols, source, required=False)
    d_col = _resolve(ctx, cols, "difficulty", (), source, required=False)
    dom_col = _resolve(ctx, cols, "domain", (), source, required=False)
    assert p_col is not None and a_col is not None
    ids = _problem_ids(rows, i_col, source)
    return [
        Problem(
            dataset=ctx.name,
            problem_id=pid,
            prompt=_prompt_text(row, p_col, i, source),
            gold=gold(row.get(a_col)),
            grader=grader,
            difficulty=_math_level(row.get(d_col)) if d_col else difficulty(row),
            domain=(cell_text(row.get(dom_col)) if dom_col else None) or "math",
            meta={c: row[c] for c in meta_cols if row.get(c) is not None},
        )
        for i, (row, pid) in enumerate(zip(rows, ids, strict=True))
    ]


@DATASETS.register("gsm8k")
def load_gsm8k(ctx: LoadContext) -> list[Problem]:
    hub = HubSource("openai/gsm8k", "main", "test", "question/answer")
    return _simple(
        ctx,
        hub,
        prompt_cols=("question",),
        id_cols=("idx", "id"),
        gold=lambda v: gsm8k_final(cell_text(v)),
        grader="gsm8k",
        difficulty=lambda row: None,
    )


@DATASETS.register("math500")
def load_math500(ctx: LoadContext) -> list[Problem]:
    hub = HubSource("HuggingFaceH4/MATH-500", None, "test", "problem/answer")
    return _simple(
        ctx,
        hub,
        prompt_cols=("problem",),
        id_cols=("unique_id", "id"),
        gold=cell_text,
        grader="math",
        difficulty=lambda row: _math_level(row.get("level")),
        meta_cols=("subject",),
    )


def _aime(ctx: LoadContext, hub: HubSource) -> list[Problem]:
    return _simple(
        ctx,
        hub,
        prompt_cols=("problem", "question"),
        id_cols=("id", "ID", "idx"),
        gold=cell_text,
        grader="aime",
        difficulty=lambda row: "aime",
    )


@DATASETS.register("aime24")
def load_aime24(ctx: LoadContext) -> list[Problem]:
    return _aime(ctx, HubSource("HuggingFaceH4/aime_2024", None, "train", "problem/answer"))


@DATASETS.register("aime25")
def load_aime25(ctx: LoadContext) -> list[Problem]:
    return _aime(ctx, HubSource("yentinglin/aime_2025", None, "train", "problem/answer"))


GPQA_CORRECT = "Correct Answer"
GPQA_INCORRECT = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


@DATASETS.register("gpqa_diamond")
def load_gpqa_diamond(ctx: LoadContext) -> list[Problem]:
    """Choices are [correct, incorrect 1-3]; the prompt stage shuffles them per sample."""
    _check_options(ctx, ("split",))
    hub = HubSource(
        "Idavidrein/gpqa", "gpqa_diamond", "train", "Question/Correct Answer/Incorrect Answer 1-3"
    )
    rows, source = _rows(ctx, hub)
    cols = _columns(rows)
    p_col = _resolve(ctx, cols, "prompt", ("Question", "question"), source, required=True)
    a_col = _resolve(ctx, cols, "answer", (GPQA_CORRECT,), source, required=True)
    missing = [c for c in GPQA_INCORRECT if c not in cols]
    if missing:
        raise UsageError(
            f"column {missing[0]!r} not found in {source} (columns: {', '.join(cols)}); "
            f"gpqa_diamond needs '{GPQA_CORRECT}' and 'Incorrect Answer 1'..'3' columns"
        )
    i_col = _resolve(ctx, cols, "id", ("Record ID", "id"), source, required=False)
    assert p_col is not None and a_col is not None
    ids = _problem_ids(rows, i_col, source)
    problems = []
    for i, (row, pid) in enumerate(zip(rows, ids, strict=True)):
        choices = [cell_text(row.get(c)) or "" for c in (a_col, *GPQA_INCORRECT)]
        meta = {k: row[k] for k in ("High-level domain", "Subdomain") if row.get(k)}
        problems.append(
            Problem(
                dataset=ctx.name,
                problem_id=pid,
                prompt=_prompt_text(row, p_col, i, source).strip(),
                gold=choices[0],
                grader="choice",
                difficulty=None,
                domain="science",
                choices=choices,
                meta=meta,
            )
        )
    return problems


# ----------------------------------------------------------------- generated workloads


def _no_file(ctx: LoadContext) -> None:
    if ctx.data_file is not None:
        raise UsageError(f"--data-file does not apply to workload {ctx.name!r}; drop it")
    if ctx.field_map:
        raise UsageError(f"--field-map does not apply to workload {ctx.name!r}; drop it")


def _int_option(ctx: LoadContext, key: str, default: int) -> int:
    value = ctx.options.get(key, default)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UsageError(f"{ctx.name} option {key!r} must be an integer (got {value!r})") from None


@DATASETS.register("procedural")
def load_procedural(ctx: LoadContext) -> list[Problem]:
    """Options: ``levels`` (default 1-5) and ``n`` (default ``limit`` or 50)."""
    _no_file(ctx)
    _check_options(ctx, ("levels", "n"))
    levels = procedural.parse_levels(ctx.options.get("levels", list(procedural.LEVELS)))
    n = _int_option(ctx, "n", ctx.limit or 50)
    return procedural.generate(n, levels, ctx.seed)


@DATASETS.register("chat")
def load_chat(ctx: LoadContext) -> list[Problem]:
    """Option ``n`` (default ``limit`` or all the fixed prompts)."""
    _no_file(ctx)
    _check_options(ctx, ("n",))
    n = _int_option(ctx, "n", ctx.limit or len(chat.PROMPTS))
    return chat.generate(n, ctx.seed)


@DATASETS.register(replay.PREFIX)
def load_replay(ctx: LoadContext) -> list[Problem]:
    """``replay:lengths.json``: a fitted length distribution (workload/replay.py);
    option ``n`` (default: as many requests as the fitted runs held)."""
    if ctx.field_map:
        raise UsageError(f"--field-map does not apply to workload {ctx.name!r}; drop it")
    _check_options(ctx, ("n",))
    n = _int_option(ctx, "n", 0) or None
    return replay.load_replay(ctx.data_file, n, ctx.seed)


# ----------------------------------------------------------------- any local table

GRADERS = ("math", "gsm8k", "aime", "none")


def guess_grader(golds: Sequence[str | None]) -> str:
    """ "gsm8k" if any gold has ``####``, "aime" if all are integers, else "math"."""
    present = [g for g in golds if g is not None]
    if any("####" in g for g in present):
        return "gsm8k"
    if present and all(_INTEGER.fullmatch(g) for g in present):
        return "aime"
    return "math"


def load_table(ctx: LoadContext) -> list[Problem]:
    """A JSONL/CSV/Parquet file of unknown origin.

    Options: ``grader`` (math/gsm8k/aime, or "none" for prompts without answers),
    ``name`` (the dataset label; default the file stem), ``domain`` (default unset).
    """
    _check_options(ctx, ("grader", "name", "domain"))
    grader_opt = ctx.options.get("grader")
    if grader_opt is not None and grader_opt not in GRADERS:
        raise UsageError(
            f"workload option 'grader' must be one of {', '.join(GRADERS)} (got {grader_opt!r})"
        )
    path = ctx.name
    rows = read_rows(path)
    source = f"'{path}'"
    cols = _columns(rows)
    p_col = _resolve(ctx, cols, "prompt", PROMPT_COLUMNS, source, required=True)
    a_col = _resolve(ctx, cols, "answer", ANSWER_COLUMNS, source, required=grader_opt != "none")
    i_col = _resolve(ctx, cols, "id", ID_COLUMNS, source, required=False)
    d_col = _resolve(ctx, cols, "difficulty", DIFFICULTY_COLUMNS, source, required=False)
    dom_col = _resolve(ctx, cols, "domain", DOMAIN_COLUMNS, source, required=False)
    assert p_col is not None
    if grader_opt == "none":
        a_col = None
    raw_golds = [cell_text(r.get(a_col)) if a_col else None for r in rows]
    grader: str | None = grader_opt or guess_grader(raw_golds)
    if grader == "none" or a_col is None:
        grader = None
    golds = [gsm8k_final(g) for g in raw_golds] if grader == "gsm8k" else raw_golds
    ids = _problem_ids(rows, i_col, source)
    name = str(ctx.options.get("name") or Path(path).stem)
    default_domain = ctx.options.get("domain")
    return [
        Problem(
            dataset=name,
            problem_id=pid,
            prompt=_prompt_text(row, p_col, i, source),
            gold=gold,
            grader=grader,
            difficulty=_math_level(row.get(d_col)) if d_col else None,
            domain=(cell_text(row.get(dom_col)) if dom_col else None) or default_domain,
            meta={"source": str(path)},
        )
        for i, (row, pid, gold) in enumerate(zip(rows, ids, golds, strict=True))
    ]
