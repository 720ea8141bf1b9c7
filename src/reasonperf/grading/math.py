"""Symbolic grader for MATH-style answers, built on math-verify.

We choose the answer span ourselves (last ``\\boxed{}`` or last list of boxes, else an
``Answer:`` line, else math-verify's own search over the whole text) because math-verify,
given several boxed answers, returns them all as one set; we want the last one to win.
Equivalence is math-verify's: gold parsed first, then the prediction,
``verify(gold, pred)``. Before that, Unicode math is rewritten as LaTeX (grading.unicode_math)
and an inequality in one variable becomes the set it describes, so that "-2 < x \\le 3"
equals "(-2, 3]" and "x < 2 or x > 3" equals "(-\\infty, 2) \\cup (3, \\infty)".

math-verify's own SIGALRM timers are switched off here (``parsing_timeout=None``,
``timeout_seconds=None``): the caller bounds the whole item with one timer
(grading.pool), which math-verify's timers would otherwise cancel.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from reasonperf.grading.extract import (
    GRADERS,
    NONE,
    Grade,
    Grader,
    answer_line,
    final_boxed,
    strip_reasoning,
    strip_wrappers,
)
from reasonperf.grading.unicode_math import unicode_to_latex

# math-verify warns that its timers are disabled (once per process); we time items ourselves.
logging.getLogger("math_verify").setLevel(logging.ERROR)


def _parse(text: str) -> list[Any]:
    from math_verify import parse

    return [_inequality_as_set(p) for p in parse(text, parsing_timeout=None)]


def _is_inequality(expr: Any) -> bool:
    """An inequality (or a conjunction/disjunction of them) in exactly one variable."""
    from sympy import And, Or
    from sympy.core.relational import Relational

    if isinstance(expr, Relational):
        ok = expr.rel_op in ("<", "<=", ">", ">=")
    elif isinstance(expr, (And, Or)):
        ok = all(_is_inequality(arg) for arg in expr.args)
    else:
        return False
    return ok and len(expr.free_symbols) == 1


def _inequality_as_set(expr: Any) -> Any:
    """The set an inequality describes ("x > 2" -> (2, oo)); anything else unchanged.

    math-verify reads "x < 2 or x > 3" as the two-element set {x < 2, x > 3}: that is the
    union of the two. Strings (math-verify's raw spans) and unsolvable relations pass.
    """
    from sympy import FiniteSet, Union

    try:
        if _is_inequality(expr):
            return expr.as_set()
        if (
            isinstance(expr, FiniteSet)
            and len(expr) > 1
            and all(_is_inequality(arg) for arg in expr.args)
            and len(expr.free_symbols) == 1
        ):
            return Union(*(arg.as_set() for arg in expr.args))
    except (NotImplementedError, TypeError, ValueError):
        return expr
    return expr


@lru_cache(maxsize=4096)
def parse_gold(gold: str) -> tuple[Any, ...]:
    """Parse a gold answer, trying it boxed, then as inline math, then as plain text.

    Cached: every sample of a problem shares its gold.
    """
    gold = unicode_to_latex(gold.strip())
    for wrapped in (f"\\boxed{{{gold}}}", f"${gold}$", gold):
        parsed = _parse(wrapped)
        if parsed:
            return tuple(parsed)
    return ()


def _prediction(text: str) -> tuple[str | None, str, list[Any]]:
    """(extracted span, method, parsed prediction)."""
    text = unicode_to_latex(text)
    box = final_boxed(text)
    if box is not None:
        box = strip_wrappers(box)
        return box, "boxed", _parse(f"\\boxed{{{box}}}")
    line = answer_line(text)
    if line is not None:
        span = strip_wrappers(line)
        parsed = _parse(f"${span}$") or _parse(line)
        if parsed:
            return span, "answer_line", parsed
    parsed = _parse(text)
    if parsed:
        shown = parsed[-1] if isinstance(parsed[-1], str) else str(parsed[0])
        return shown, "math_verify", parsed
    return None, NONE, []


def grade_math(response: str, gold: str | None) -> Grade:
    """Grade a MATH-style answer. Not time-bounded itself: run it via grading.pool."""
    from math_verify import verify

    extracted, method, pred = _prediction(strip_reasoning(response))
    if gold is None:
        return Grade(None, extracted, method)
    if not pred:
        return Grade(False, extracted, method)
    gold_parsed = parse_gold(gold)
    if gold_parsed:
        ok = verify(list(gold_parsed), pred, timeout_seconds=None)
    else:  # gold math-verify cannot read: fall back to exact text
        ok = extracted is not None and extracted.strip() == gold.strip()
    return Grade(bool(ok), extracted, method)


GRADERS.register("math")(Grader("math", grade_math, isolate=True))
