"""Answer-extraction primitives shared by every grader, and the grader contract.

Everything here is pure text processing (no sympy), so it is cheap and safe to run in
the main process, in threads, or inside the grading pool.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from reasonperf.registry import Registry


@dataclass(frozen=True, slots=True)
class Grade:
    """The outcome of grading one answer.

    ``correct`` is None only when there was no gold to compare with (extraction only).
    ``method`` names the rule that produced ``extracted`` ("boxed", "answer_line",
    "last_number", "fallback", ...); "none" when nothing was extracted, "timeout" when the
    grader ran out of time (counted as wrong).
    """

    correct: bool | None
    extracted: str | None
    method: str


@dataclass(frozen=True, slots=True)
class Grader:
    """A registered grader: ``fn(answer_text, gold_or_None) -> Grade``.

    ``isolate`` marks graders that must run in the process pool (math-verify relies on
    SIGALRM and sympy can hang), the others are pure regex and run in-process.
    """

    name: str
    fn: Callable[[str, str | None], Grade]
    isolate: bool = False


GRADERS: Registry[Grader] = Registry("grader")

NONE = "none"

# --------------------------------------------------------------------------- reasoning

_THINK_CLOSE = "</think>"
_THINK_OPEN = "<think>"


def strip_reasoning(text: str | None) -> str:
    """Return only the answer part of a response.

    The client already splits reasoning off; this is the safety net when the answer still
    carries it: keep what follows the last ``</think>``; an opened but never closed
    ``<think>`` means everything after it is unfinished reasoning.
    """
    if not text:
        return ""
    if _THINK_CLOSE in text:
        return text.rsplit(_THINK_CLOSE, 1)[1]
    if _THINK_OPEN in text:
        return text.split(_THINK_OPEN, 1)[0]
    return text


def has_unclosed_think(text: str | None) -> bool:
    """True when ``text`` opens a ``<think>`` block it never closes (truncated reasoning)."""
    if not text or _THINK_OPEN not in text:
        return False
    return _THINK_CLOSE not in text.rsplit(_THINK_OPEN, 1)[1]


# --------------------------------------------------------------------------- boxed

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\b")


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """Content of the brace group opening at ``text[start] == '{'`` and the index after it."""
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif ch == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None


def _boxes(text: str) -> list[tuple[str, int, int]]:
    """(content, start, end) of every complete top-level box, in order."""
    found: list[tuple[str, int, int]] = []
    pos = 0
    while True:
        m = _BOXED_RE.search(text, pos)
        if m is None:
            return found
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            got = _braced(text, i)
            if got is None:
                pos = m.end()
                continue
            found.append((got[0].strip(), m.start(), got[1]))
            pos = got[1]
        else:
            bare = re.match(r"[^\s$.,;]+", text[i:]) if i > m.end() else None
            if bare:
                found.append((bare.group(0), m.start(), i + bare.end()))
                pos = i + bare.end()
            else:
                pos = m.end()


def all_boxed(text: str) -> list[str]:
    """Contents of every complete top-level ``\\boxed{...}`` / ``\\fbox{...}``, in order.

    Handles nested braces (``\\boxed{\\frac{1}{\\sqrt{2}}}``) and the brace-less form
    ``\\boxed 5``. An unclosed box (a truncated response) is skipped.
    """
    return [content for content, _, _ in _boxes(text)]


def last_boxed(text: str) -> str | None:
    """The last boxed answer: when a response boxes several times, the last one wins."""
    boxes = all_boxed(text)
    return boxes[-1] if boxes else None


# What may stand between the boxes of one listed answer: "$\boxed{3}$, $\boxed{5}$, and
# $\boxed{7}$" or "$x = \boxed{1}$ and $x = \boxed{2}$" list roots; "\boxed{3}. Checking
# again: \boxed{5}" is a revision.
_BOX_LIST_GAP_RE = re.compile(
    r"^(?:\s|,|;|\$|\\[()\[\]]|\\quad|\\qquad|\\[,;]|\band\b|\\text\{\s*and\s*\}"
    r"|\b[A-Za-z](?:_\{?\w+\}?)?\s*=)*$"
)


def final_boxed(text: str) -> str | None:
    """The last boxed answer, or the last *list* of boxes when they form one answer.

    Boxes separated only by commas, "and", spacing and math delimiters are joined with
    ", " (several roots boxed one by one); any other text in between means a revision,
    and then only the last box counts.
    """
    boxes = _boxes(text)
    if not boxes:
        return None
    group = [boxes[-1]]
    for prev in reversed(boxes[:-1]):
        if not _BOX_LIST_GAP_RE.match(text[prev[2] : group[0][1]]):
            break
        group.insert(0, prev)
    # The same answer boxed twice in a row ("$\boxed{5}$ \[\boxed{5}\]") is one answer.
    unique: dict[str, str] = {}
    for content, _, _ in group:
        unique.setdefault(re.sub(r"\s+", "", content), content)
    return ", ".join(unique.values())


# --------------------------------------------------------------------------- answer lines

# "Answer: X", "**Final Answer:** X", "The answer is X", "the final answer is: X", "#### X".
_ANSWER_LINE_RES = (
    re.compile(r"(?im)^[ \t>*_#]*(?:final\s+)?answer[ \t*_]*:[ \t*_]*(?P<a>.+?)[ \t]*$"),
    re.compile(r"(?i)\b(?:the\s+)?(?:final\s+)?answer\s+is\s*:?\s*(?P<a>[^\n]+)"),
    re.compile(r"(?m)^[ \t]*####[ \t]*(?P<a>.+?)[ \t]*$"),
)


_SENTENCE_END_RE = re.compile(r"(?<!\d)\.(?:\s|$)|\.\s+(?=[A-Z])")
_MATH_OPENERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _trim_sentence(span: str) -> str:
    """Keep the answer itself: a leading math span whole, else up to the sentence's end.

    "$\\frac{1}{2}$. I hope it is correct." -> "$\\frac{1}{2}$"; "18 apples. So..." -> "18 apples".
    """
    for a, b in _MATH_OPENERS:
        if span.startswith(a):
            end = span.find(b, len(a))
            while end > 0 and span[end - 1] == "\\" and b == "$":  # an escaped \$ sign
                end = span.find(b, end + 1)
            if end > 0:
                return span[: end + len(b)]
            return span
    m = _SENTENCE_END_RE.search(span)
    return span[: m.start()].rstrip() if m else span


def answer_line(text: str) -> str | None:
    """The text after the last answer marker ("Answer:", "The answer is", "####")."""
    best: tuple[int, str] | None = None
    for rx in _ANSWER_LINE_RES:
        for m in rx.finditer(text):
            a = _trim_sentence(m.group("a").strip().strip("*_ ").strip())
            if a and (best is None or m.start("a") >= best[0]):
                best = (m.start("a"), a)
    return best[1] if best else None


_BOLD_RE = re.compile(r"\*\*(?P<b>[^*\n]+?)\*\*|__(?P<u>[^_\n]+?)__")


def last_line_bold(text: str) -> str | None:
    """The last bold span (``**...**``) on the last non-empty line, without its label.

    Models emphasise the result in their closing sentence ("She pays **$64**.",
    "**Total: $64.00** (16 glasses at $4)"); only the last line counts, so the bold
    headings of intermediate steps are never taken for the answer.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    spans = [m.group("b") or m.group("u") for m in _BOLD_RE.finditer(lines[-1])]
    if not spans:
        return None
    return spans[-1].split(":", 1)[-1].strip() or None


# --------------------------------------------------------------------------- numbers

# A signed number with optional thousands separators, decimals, or a/b fraction.
NUMBER_RE = re.compile(
    r"(?<![\w.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?(?![\w])|(?<![\w.])-?\.\d+"
)


def last_number(text: str) -> str | None:
    """The last number written in ``text`` (after LaTeX clean-up), as written."""
    found = NUMBER_RE.findall(clean_latex(text))
    return found[-1].strip() if found else None


# --------------------------------------------------------------------------- clean-up

_TEXT_CMD_RE = re.compile(
    r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}"
)
_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def clean_latex(text: str) -> str:
    """Light, lossless-for-grading LaTeX clean-up: text macros unwrapped, spacing removed."""
    s = _TEXT_CMD_RE.sub(r"\1", text).replace("\u2212", "-")  # unicode minus
    s = s.replace("\\$", "$").replace("\\%", "%").replace("\\!", "").replace("\\,", "")
    s = s.replace("\\;", " ").replace("\\ ", " ").replace("{,}", ",")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\left", "").replace("\\right", "")
    return s


def strip_wrappers(span: str) -> str:
    """Remove math delimiters, markdown emphasis and a trailing full stop around an answer."""
    s = span.strip()
    changed = True
    while changed and s:
        changed = False
        for a, b in (("**", "**"), ("__", "__"), *_DELIMS):
            if len(s) >= len(a) + len(b) and s.startswith(a) and s.endswith(b):
                s = s[len(a) : len(s) - len(b)].strip()
                changed = True
        if s.endswith("."):
            s = s[:-1].rstrip()
            changed = True
    return s
