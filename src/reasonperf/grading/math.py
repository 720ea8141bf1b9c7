"""Symbolic grader for MATH-style answers, built on math-verify.

We choose the answer span ourselves (last ``\\boxed{}``, else an ``Answer:`` line, else
math-verify's own search over the whole text) because math-verify, given several boxed
answers, returns them all as one set; we want the last one to win. Equivalence is
math-verify's: gold parsed first, then the prediction, ``verify(gold, pred)``.

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
    last_boxed,
    strip_reasoning,
    strip_wrappers,
)

# math-verify warns that its timers are disabled (once per process); we time items ourselves.
logging.getLogger("math_verify").setLevel(logging.ERROR)


def _parse(text: str) -> list[Any]:
    from math_verify import parse

    return parse(text, parsing_timeout=None)


@lru_cache(maxsize=4096)
def parse_gold(gold: str) -> tuple[Any, ...]:
    """Parse a gold answer, trying it boxed, then as inline math, then as plain text.

    Cached: every sample of a problem shares its gold.
    """
    gold = gold.strip()
    for wrapped in (f"\\boxed{{{gold}}}", f"${gold}$", gold):
        parsed = _parse(wrapped)
        if parsed:
            return tuple(parsed)
    return ()


def _prediction(text: str) -> tuple[str | None, str, list[Any]]:
    """(extracted span, method, parsed prediction)."""
    box = last_boxed(text)
    if box is not None:
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
