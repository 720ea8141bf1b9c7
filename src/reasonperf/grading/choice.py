"""Multiple-choice grader (GPQA-style letters A-J).

Order of rules, first hit wins, and within a rule the last occurrence in the text wins:
1. ``Answer: X`` lines ("answer"): X may be written $X$, (X), **X**, *x*, X), \\text{X},
   \\boxed{X}, "Option X"; a lower-case letter when wrapped or alone ("Answer: b");
2. ``\\boxed{X}`` ("boxed"), also \\boxed{\\text{X}} and \\boxed{(X)};
3. looser phrasings ("fallback"): "the answer is (B)", "option B is correct", or a lone
   letter on the last line. Counted under its own method so its share can be reported.
No letter found means wrong: never a random guess. An answer naming several letters
("Answer: A and C", "\\boxed{B, D}") is extracted as "A, C" and is wrong: these are
single-answer questions.
"""

from __future__ import annotations

import re

from reasonperf.grading.extract import GRADERS, NONE, Grade, Grader, last_boxed, strip_reasoning

LETTERS = "ABCDEFGHIJ"
_L = f"[{LETTERS}]"
_ANY_L = f"[{LETTERS}{LETTERS.lower()}]"

# A letter with any mix of the usual wrappers around it, and no word character after it.
_WRAPPED = (
    r"(?:\*{1,2}|_{1,2})?[ \t]*\$?[ \t]*(?:\\boxed\{)?[ \t]*"
    r"(?:\\(?:text|textbf|mathrm|mathbf)[ \t]*\{)?[ \t]*(?:(?i:option|choice)[ \t]+)?"
    r"(?:\*{1,2}|_{1,2})?[(\[]?[ \t]*"
    rf"(?P<L>{_ANY_L})"
    r"(?![A-Za-z0-9])"
)
_ANSWER_RE = re.compile(
    r"(?i:answer)[ \t]*(?:\*\*|__)?[ \t]*[:：][ \t]*(?:\*\*|__)?[ \t]*" + _WRAPPED
)
# A lower-case letter counts only when wrapped or alone: "Answer: (c)", "Answer: b",
# never the article in "Answer: a dog".
_LOWER_WRAPPED_BEFORE = "([*_{$"
_LOWER_ALONE_AFTER_RE = re.compile(r"[ \t]*(?:[)\]*_$}.,;:!?]|\r?\n|$)")
# Another letter joined to the first: "A and C", "B, D", "A or B", "\\boxed{A, C}".
_MORE_RE = re.compile(
    r"[ \t]*[)\]}*_$]*[ \t]*(?:,|/|&|\+|\band\b|\bor\b|\\text\{\s*(?:and|or)\s*\})[ \t]*"
    r"(?:\*{1,2}|_{1,2}|\$|\\text\{|\\textbf\{|\\mathrm\{|[(\[])*[ \t]*"
    rf"(?P<L>{_ANY_L})(?![A-Za-z0-9])"
)
# A letter in a box or a gold: upper-case, or lower-case when alone ("\\boxed{b}").
_BOX_CONTENT_RE = re.compile(
    rf"^[(\[]?[ \t]*(?:(?P<L>{_L})[ \t]*[)\]]?(?:[.:)][^\n]*)?|(?P<l>{_L.lower()})[ \t]*[)\]]?)$"
)
_BOX_LETTERS_RE = re.compile(rf"^(?P<L>{_L}{{2,4}})$")  # "\\boxed{AC}": two answers
_TEXT_MACRO_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_FALLBACK_RES = (
    re.compile(r"(?i:answer|choice|option)\s+(?i:is|would be|should be)\s*:?\s*" + _WRAPPED),
    re.compile(r"(?i:option|choice)\s+" + _WRAPPED + r"(?=[^\n]*(?i:correct|right|answer))"),
    re.compile(r"(?i:answer)\s*(?i:is)?\s*[-=]\s*" + _WRAPPED),
)
_LONE_LAST_LINE_RE = re.compile(
    rf"^[ \t>*_#$]*(?:\\boxed\{{)?[(\[]?(?P<L>{_L})[)\]]?\}}?[ \t*_$.]*$"
)


def _letters_at(text: str, m: re.Match[str]) -> str | None:
    """The answer a letter match stands for: "B", or "A, C" when several are joined.

    None for a lower-case letter that is neither wrapped nor alone (an article).
    """
    first = m.group("L")
    start, pos = m.start("L"), m.end("L")
    if first.islower() and not (
        (start > 0 and text[start - 1] in _LOWER_WRAPPED_BEFORE)
        or _LOWER_ALONE_AFTER_RE.match(text, pos)
    ):
        return None
    letters = [first.upper()]
    while (more := _MORE_RE.match(text, pos)) is not None:
        if more.group("L").islower() and not first.islower():
            break
        if more.group("L").upper() not in letters:
            letters.append(more.group("L").upper())
        pos = more.end("L")
    return ", ".join(letters)


def _last(rx: re.Pattern[str], text: str) -> tuple[int, str] | None:
    hits = [(m.start("L"), got) for m in rx.finditer(text) if (got := _letters_at(text, m))]
    return hits[-1] if hits else None


def letter_of(text: str | None) -> str | None:
    """The letter a gold or a boxed span stands for ("B", "(B)", "\\text{B}", "B) 42")."""
    if text is None:
        return None
    s = _TEXT_MACRO_RE.sub(r"\1", text).strip().strip("$*_ ").strip()
    m = _BOX_CONTENT_RE.match(s)
    return (m.group("L") or m.group("l").upper()) if m else None


def _boxed_letters(box: str | None) -> str | None:
    """The letter(s) in a box: "B", or "A, C" for "\\boxed{A, C}" / "\\boxed{AC}"."""
    if box is None:
        return None
    single = letter_of(box)
    if single:
        return single
    s = _TEXT_MACRO_RE.sub(r"\1", box).strip().strip("$*_ ").strip()
    if _BOX_LETTERS_RE.match(s):
        return ", ".join(dict.fromkeys(s))
    m = re.match(rf"[(\[]?[ \t]*(?P<L>{_L})(?![A-Za-z0-9])", s)
    if m:
        letters = _letters_at(s, m)
        return letters if letters and "," in letters else None
    return None


def extract_choice(text: str) -> tuple[str | None, str]:
    """(letter, method); the letter is "A, C" when the answer names more than one."""
    hit = _last(_ANSWER_RE, text)
    if hit:
        return hit[1], "answer"
    box = _boxed_letters(last_boxed(text))
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
