"""Grade stored request rows: the grading stage of a run (regradable at any time).

Regex graders run in this process; graders marked ``isolate`` (math-verify) run in the
process pool, each item under a time limit. Identical (grader, answer, gold) triples are
graded once. The output depends only on the input rows, never on timing or pool order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reasonperf.grading.extract import GRADERS, Grade, has_unclosed_think, strip_reasoning
from reasonperf.grading.pool import OK, map_isolated

DEFAULT_TIMEOUT_S = 10.0


def is_truncated(row: Mapping[str, Any]) -> bool:
    """Cut off by the length limit, or reasoning that never closed.

    "Never closed" is an empty answer after non-empty reasoning, or an answer text that
    still opens a ``<think>`` it never closes.
    """
    if row.get("finish_reason") == "length":
        return True
    answer = row.get("answer_text") or ""
    if not answer.strip() and (row.get("reasoning_text") or "").strip():
        return True
    return has_unclosed_think(answer)


def _grade_isolated(kind: str, text: str, gold: str | None) -> Grade:
    """Pool entry point: module-level so spawned workers can import it by name."""
    return GRADERS.get(kind).fn(text, gold)


def _from_outcome(outcome: tuple[str, Any]) -> Grade:
    status, value = outcome
    return value if status == OK else Grade(False, None, status)


def grade_rows(
    rows: Sequence[Mapping[str, Any]],
    workers: int = 2,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
) -> list[dict[str, Any]]:
    """Grade rows with answer_text, reasoning_text, gold, grader, finish_reason.

    Returns, per row and in order, {extracted_answer, extraction_method, correct,
    truncated}. ``correct`` is None when the row has no grader or no gold (its answer is
    still extracted when a grader is named, so cons@n works without gold). A timed-out
    item is wrong with method "timeout"; a grader crash is wrong with method "error".
    Unknown grader names raise UsageError.
    """
    grades: list[Grade | None] = [None] * len(rows)
    isolated: dict[tuple[str, str, str | None], list[int]] = {}
    for i, row in enumerate(rows):
        kind = row.get("grader")
        if kind is None:
            continue
        grader = GRADERS.get(kind)
        text = strip_reasoning(row.get("answer_text"))
        gold = row.get("gold")
        if grader.isolate:
            isolated.setdefault((kind, text, gold), []).append(i)
        else:
            grades[i] = grader.fn(text, gold)
    keys = list(isolated)
    outcomes = map_isolated(_grade_isolated, keys, workers=workers, timeout_s=timeout_s)
    for key, outcome in zip(keys, outcomes, strict=True):
        isolated_grade = _from_outcome(outcome)
        for i in isolated[key]:
            grades[i] = isolated_grade
    out: list[dict[str, Any]] = []
    for row, grade in zip(rows, grades, strict=True):
        gold = row.get("gold")
        out.append(
            {
                "extracted_answer": grade.extracted if grade else None,
                "extraction_method": grade.method if grade else None,
                "correct": None if grade is None or gold is None else grade.correct,
                "truncated": is_truncated(row),
            }
        )
    return out
