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
import re
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

# Unit words after an answer on an "Answer:" line ("\\sqrt{5} m/s", "12 square units"):
# wrapped in \\text{} so that math-verify drops them instead of reading variables m and s.
_UNIT_WORDS_RE = re.compile(
    r"(?<=[\d})])\s+(?P<u>(?:[A-Za-z]{2,}|[A-Za-z]+/[A-Za-z]+)(?:\^?\d)?"
    r"(?:\s+(?:[A-Za-z]{2,}|[A-Za-z]+/[A-Za-z]+)(?:\^?\d)?)*)\s*$"
)

# math-verify warns that its timers are disabled (once per process); we time items ourselves.
logging.getLogger("math_verify").setLevel(logging.ERROR)


def _parse(text: str) -> list[Any]:
    from math_verify import parse

    return [_comparable(p) for p in parse(text, parsing_timeout=None)]


def _subject(expr: Any) -> Any:
    """The one unknown an inequality bounds ("x", "\\lambda", "f(x)"), else None.

    Every relation must compare that unknown with constants: "2 < x \\le 3",
    "\\frac{\\pi^2}{8} \\le f(x) \\le 5", "x \\neq 12" qualify; "2x + 1 > 5" (a set of
    2x + 1, not of x) and "x < y" do not.
    """
    from sympy import And, Or, Symbol
    from sympy.core.function import AppliedUndef
    from sympy.core.relational import Relational

    relations = list(expr.args) if isinstance(expr, (And, Or)) else [expr]
    subjects = set()
    for rel in relations:
        if isinstance(rel, (And, Or)):
            inner = _subject(rel)
            if inner is None:
                return None
            subjects.add(inner)
            continue
        if not isinstance(rel, Relational) or rel.rel_op not in ("<", "<=", ">", ">=", "!="):
            return None
        unknowns = [side for side in (rel.lhs, rel.rhs) if side.free_symbols]
        if len(unknowns) != 1 or not isinstance(unknowns[0], (Symbol, AppliedUndef)):
            return None
        subjects.add(unknowns[0])
    return subjects.pop() if len(subjects) == 1 else None


def _relation_set(expr: Any, subject: Any) -> Any:
    """The real values of ``subject`` that satisfy ``expr``."""
    from sympy import Dummy

    return expr.subs(subject, Dummy("t", real=True)).as_set()


def _comparable(expr: Any) -> Any:
    """A parsed answer in the form it compares in: an inequality as the set it describes
    ("x > 2" -> (2, oo)); anything else unchanged.

    math-verify reads "x < 2 or x > 3" as the two-element set {x < 2, x > 3}: that is the
    union of the two; an "x \\neq a" among them removes the point ("2 < x < 102,
    x \\neq 12"). Matrices of one row or column become tuples, so that a vector written
    "(1, 2)" equals its pmatrix. Strings (math-verify's raw spans) pass unchanged.
    """
    from sympy import FiniteSet, Intersection, MatrixBase, Tuple, Union
    from sympy.core.relational import Relational

    try:
        if isinstance(expr, MatrixBase) and 1 in expr.shape and len(expr) > 1:
            return Tuple(*expr)
        if isinstance(expr, FiniteSet) and len(expr) > 1:
            parts = list(expr.args)
            subjects = {_subject(part) for part in parts}
            if len(subjects) != 1 or None in subjects:
                return expr
            subject = subjects.pop()
            excluded = [p for p in parts if isinstance(p, Relational) and p.rel_op == "!="]
            kept = [p for p in parts if p not in excluded]
            if not kept:
                return expr
            union = Union(*(_relation_set(p, subject) for p in kept))
            return Intersection(union, *(_relation_set(p, subject) for p in excluded))
        subject = _subject(expr)
        if subject is not None:
            return _relation_set(expr, subject)
    except (NotImplementedError, TypeError, ValueError, AttributeError):
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
        span = _UNIT_WORDS_RE.sub(r" \\text{\g<u>}", strip_wrappers(line))
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
