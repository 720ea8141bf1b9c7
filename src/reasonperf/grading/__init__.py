"""Accuracy: answer extraction, correctness and sampling statistics.

``grade(kind, response, gold)`` grades one answer; ``grade_rows`` grades a run's rows;
``stats`` turns graded rows into avg@n, pass@k, cons@n and rates. Graders live in a
registry (``GRADERS``): add one with ``GRADERS.register(name)(Grader(name, fn))``.
"""

from __future__ import annotations

from reasonperf.grading import choice, math, numeric  # noqa: F401  (fill the registry)
from reasonperf.grading.extract import GRADERS, Grade, Grader, strip_reasoning
from reasonperf.grading.grade_run import DEFAULT_TIMEOUT_S, grade_rows, is_truncated
from reasonperf.grading.pool import OK, call_with_timeout


def grade(
    kind: str, response: str | None, gold: str | None, timeout_s: float | None = DEFAULT_TIMEOUT_S
) -> Grade:
    """Grade one answer text against its gold, in this process.

    Only the text after a ``</think>`` is graded. math-verify graders are time-bounded
    here only when called from the main thread; for many answers use ``grade_rows``.
    A None gold returns the extraction with ``correct=None``.
    """
    grader = GRADERS.get(kind)
    text = strip_reasoning(response)
    if not grader.isolate:
        return grader.fn(text, gold)
    status, value = call_with_timeout(grader.fn, (text, gold), timeout_s)
    return value if status == OK else Grade(None if gold is None else False, None, status)


__all__ = ["GRADERS", "Grade", "Grader", "grade", "grade_rows", "is_truncated"]
