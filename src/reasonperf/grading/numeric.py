"""Exact numeric graders: GSM8K (any rational answer) and AIME (integer answers).

Values are compared as ``Fraction`` so that 18 == 18.0 == 18.00 == 36/2 == 2^4+2 with no
float rounding; thousands separators, currency signs, percent signs and trailing unit
words are stripped before parsing. Unicode math is rewritten as LaTeX first, and an answer
line with no digits is read for numbers written in words ("seventy-two"). A number with an
irrational factor ("12\\sqrt{2}", "45/\\pi") is not a number here: it grades wrong.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from text_to_num import alpha2digit

from reasonperf.grading.extract import (
    GRADERS,
    NONE,
    Grade,
    Grader,
    answer_line,
    clean_latex,
    last_boxed,
    last_line_bold,
    last_number,
    strip_reasoning,
    strip_wrappers,
)
from reasonperf.grading.rational import exact_value
from reasonperf.grading.unicode_math import unicode_to_latex

_FRAC_RE = re.compile(r"^(-?)\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}$")
_SLASH_RE = re.compile(r"^(-?[\d.]+)/([\d.]+)$")
_PLAIN_RE = re.compile(r"^-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?$|^-?\.\d+$")
_CURRENCY = "$€£¥"
# Unit words or symbols after a number ("18 dollars", "5 cm^2", "25%", "90^\circ").
_UNIT_TAIL_RE = re.compile(r"(?:\s*(?:%|\^\s*\{?\\circ\}?|°|[A-Za-z][A-Za-z .^\d{}/]*))$")
_FIRST_NUM_RE = re.compile(
    r"-?\\frac\{-?[\d.]+\}\{-?[\d.]+\}|-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+"
)
# A number that is only part of a term: inside a fraction or power, or multiplied by a
# root, pi or a variable ("\\frac{45}{\\pi}", "12\\sqrt{2}", "2^{10}", "3x").
_PART_BEFORE_RE = re.compile(r"(?:\\frac|\\sqrt|[{^/*])\s*$")
_PART_AFTER_RE = re.compile(
    r"^(?:\s*(?:\\(?:sqrt|pi|frac|cdot|times|div)(?![A-Za-z])|[\^{]|[*/]\s*[\d\\{(])"
    r"|[A-Za-z](?![A-Za-z]))"
)
_APPROX_RE = re.compile(r"\\approx|\\sim(?![A-Za-z])")


def _plain_value(s: str) -> Fraction | None:
    s = s.strip()
    m = _FRAC_RE.match(s)
    try:
        if m:
            value = Fraction(m.group(2)) / Fraction(m.group(3))
            return -value if m.group(1) else value
        m = _SLASH_RE.match(s)
        if m:
            return Fraction(m.group(1)) / Fraction(m.group(2))
        if _PLAIN_RE.match(s):
            return Fraction(s.replace(",", "").rstrip("."))
    except (ValueError, ZeroDivisionError):
        return None
    return None


def to_number(text: str | None) -> Fraction | None:
    """The value of ``text`` when it is one number (with currency, %, or a unit word).

    Returns None for anything else (expressions, lists, words), so that a caller can fall
    back to a looser rule or to text comparison.
    """
    if text is None:
        return None
    s = clean_latex(strip_wrappers(text))
    s = s.replace("\u2212", "-")
    if s.startswith("{") and s.endswith("}"):
        s = s[1:-1]
    s = s.strip().strip(_CURRENCY).strip()
    if s.startswith("-") and len(s) > 1 and s[1] in _CURRENCY:
        s = "-" + s[2:]
    value = _plain_value(s)
    if value is None:
        tail = _UNIT_TAIL_RE.search(s)
        if tail and tail.start() > 0:
            value = _plain_value(s[: tail.start()].strip().rstrip(_CURRENCY).strip())
    return value


def number_in(span: str | None) -> Fraction | None:
    """The value an extracted answer span stands for.

    The whole span when it is one number or exact arithmetic ("2^5+1"); otherwise the
    first number after the last "=" ("3 * 6 = 18 apples" -> 18), before any "\\approx",
    provided that number stands alone: "12\\sqrt{2}" or "\\frac{45}{\\pi}" give None.
    """
    if span is None:
        return None
    value = to_number(span)
    if value is not None:
        return value
    s = clean_latex(span).replace("\u2212", "-")
    s = _APPROX_RE.split(s.rsplit("=", 1)[-1], maxsplit=1)[0]
    value = exact_value(strip_wrappers(s).strip(_CURRENCY))
    if value is not None:
        return value
    m = _FIRST_NUM_RE.search(s)
    if m is None or _PART_BEFORE_RE.search(s[: m.start()]) or _PART_AFTER_RE.match(s[m.end() :]):
        return None
    return to_number(m.group(0))


def spelled_out(span: str) -> str:
    """``span`` with English number words as digits ("seventy-two clips" -> "72 clips")."""
    return alpha2digit(span, "en", threshold=0)


@functools.lru_cache(maxsize=65536)  # pure; cons@n calls it once per row per grouping
def normalize_answer(answer: str | None) -> str | None:
    """A canonical key for majority voting (cons@n) across the samples of one problem.

    Numbers compare by value ("18" == "18.00", "1/2" == "\\frac{1}{2}" == "0.5"),
    anything else by its cleaned, whitespace-free, lower-cased text.
    """
    if answer is None:
        return None
    value = to_number(answer)
    if value is not None:
        return str(value)
    s = clean_latex(strip_wrappers(answer))
    s = re.sub(r"\s+", "", s).lower()
    return s or None


def gsm8k_gold(gold: str) -> str:
    """GSM8K's gold is the text after ``####`` in the worked solution (else the whole)."""
    return gold.rsplit("####", 1)[1].strip() if "####" in gold else gold.strip()


def _extract(text: str) -> tuple[str | None, str]:
    """Last \\boxed{}, else an answer line, else a bold number on the last line, else the
    last number (the GSM8K/AIME chain).

    An answer line without digits is read for number words ("Answer: fourteen").
    """
    text = unicode_to_latex(text)
    box = last_boxed(text)
    if box is not None:
        return strip_wrappers(box), "boxed"
    line = answer_line(text)
    if line is not None:
        if number_in(line) is not None:
            return strip_wrappers(line), "answer_line"
        if not any(ch.isdigit() for ch in line):
            words = strip_wrappers(spelled_out(line))
            if number_in(words) is not None:
                return words, "answer_words"
    bold = last_line_bold(text)
    if bold is not None and number_in(bold) is not None:
        return strip_wrappers(bold), "bold"
    num = last_number(text)
    if num is not None:
        return num, "last_number"
    return None, NONE


def _grade_numeric(response: str, gold: str | None, integer: bool) -> Grade:
    extracted, method = _extract(strip_reasoning(response))
    if gold is None:
        return Grade(None, extracted, method)
    if extracted is None:
        return Grade(False, None, method)
    pred = number_in(extracted)
    want = to_number(gold)
    if want is None:  # a non-numeric gold: compare canonical text
        return Grade(normalize_answer(extracted) == normalize_answer(gold), extracted, method)
    if integer and pred is not None and pred.denominator != 1:
        return Grade(False, extracted, method)
    return Grade(pred is not None and pred == want, extracted, method)


def grade_gsm8k(response: str, gold: str | None) -> Grade:
    """GSM8K: exact rational comparison against the number after ``####``."""
    return _grade_numeric(response, None if gold is None else gsm8k_gold(gold), integer=False)


def grade_aime(response: str, gold: str | None) -> Grade:
    """AIME: integer comparison ("025" == "25")."""
    return _grade_numeric(response, gold, integer=True)


GRADERS.register("gsm8k")(Grader("gsm8k", grade_gsm8k))
GRADERS.register("aime")(Grader("aime", grade_aime))
