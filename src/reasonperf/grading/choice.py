"""Multiple-choice grader (GPQA-style letters A-J).

Order of rules, first hit wins, and within a rule the last occurrence in the text wins:
1. ``Answer: X`` lines ("answer"): X may be written $X$, (X), **X**, X), \\text{X}, \\boxed{X};
2. ``\\boxed{X}`` ("boxed"), also \\boxed{\\text{X}} and \\boxed{(X)};
3. looser phrasings ("fallback"): "the answer is (B)", "option B is correct", or a lone
   letter on the last line. Counted under its own method so its share can be reported.
No letter found means wrong: never a random guess.
"""

from __future__ import annotations

import re

from reasonperf.grading.extract import GRADERS, NONE, Grade, Grader, last_boxed, strip_reasoning

LETTERS = "ABCDEFGHIJ"
_L = f"[{LETTERS}]"

# A letter with any mix of the usual wrappers around it, and no word character after it.
_WRAPPED = (
    r"(?:\*\*|__)?[ \t]*\$?[ \t]*(?:\\boxed\{)?[ \t]*"
    r"(?:\\(?:text|textbf|mathrm|mathbf)[ \t]*\{)?[ \t]*[(\[]?[ \t]*"
    rf"(?P<L>{_L})"
    r"(?![A-Za-z0-9])"
)
_ANSWER_RE = re.compile(
    r"(?i:answer)[ \t]*(?:\*\*|__)?[ \t]*[:：][ \t]*(?:\*\*|__)?[ \t]*" + _WRAPPED
)
# A lower-case letter only counts when parenthesised: "Answer: (c)", never "Answer: a dog".
_ANSWER_LOWER_RE = re.compile(
    r"(?i:answer)[ \t]*(?:\*\*|__)?[ \t]*[:：][ \t]*(?:\*\*|__)?[ \t]*\$?\("
    rf"(?P<L>{_L.lower()})\)"
)
_BOX_CONTENT_RE = re.compile(rf"^[(\[]?[ \t]*(?P<L>{_L})[ \t]*[)\]]?(?:[.:)][^\n]*)?$")
_TEXT_MACRO_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_FALLBACK_RES = (
    re.compile(r"(?i:answer|choice|option)\s+(?i:is|would be|should be)\s*:?\s*" + _WRAPPED),
    re.compile(r"(?i:option|choice)\s+" + _WRAPPED + r"(?=[^\n]*(?i:correct|right|answer))"),
    re.compile(r"(?i:answer)\s*(?i:is)?\s*[-=]\s*" + _WRAPPED),
)
_LONE_LAST_LINE_RE = re.compile(
    rf"^[ \t>*_#$]*(?:\\boxed\{{)?[(\[]?(?P<L>{_L})[)\]]?\}}?[ \t*_$.]*$"
)


def _last(rx: re.Pattern[str], text: str) -> tuple[int, str] | None:
    hits = [(m.start("L"), m.group("L")) for m in rx.finditer(text)]
    return hits[-1] if hits else None


def letter_of(text: str | None) -> str | None:
    """The letter a gold or a boxed span stands for ("B", "(B)", "\\text{B}", "B) 42")."""
    if text is None:
        return None
    s = _TEXT_MACRO_RE.sub(r"\1", text).strip().strip("$*_ ").strip()
    m = _BOX_CONTENT_RE.match(s)
    return m.group("L") if m else None


def extract_choice(text: str) -> tuple[str | None, str]:
    hits = [h for rx in (_ANSWER_RE, _ANSWER_LOWER_RE) if (h := _last(rx, text))]
    if hits:
        return max(hits)[1].upper(), "answer"
    box = letter_of(last_boxed(text))
    if box:
        return box, "boxed"
    hits = [h for rx in _FALLBACK_RES if (h := _last(rx, text))]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if lines:
        m = _LONE_LAST_LINE_RE.match(lines[-1])
        if m:
            hits.append((len(text), m.group("L")))
    if hits:
        return max(hits)[1], "fallback"
    return None, NONE


def grade_choice(response: str, gold: str | None) -> Grade:
    extracted, method = extract_choice(strip_reasoning(response))
    if gold is None:
        return Grade(None, extracted, method)
    want = letter_of(gold) or gold.strip().upper()
    return Grade(extracted is not None and extracted == want, extracted, method)


GRADERS.register("choice")(Grader("choice", grade_choice))
