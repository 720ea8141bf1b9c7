"""Unicode math as models write it (−, √, ≤, ×, ·, π, ½, x², 70 000) rewritten as LaTeX.

Reasoning models, gpt-oss in particular, often answer in Unicode rather than LaTeX. The
graders and math-verify read LaTeX, so answers are rewritten first: "3√13" becomes
"3\\sqrt{13}", "x⁵ − 1" becomes "x^{5} - 1", "½" becomes "\\frac{1}{2}", and a thin or
no-break space between digit groups (a thousands separator) is dropped.
Plain ASCII text passes through unchanged.
"""

from __future__ import annotations

import re

# Single characters with a direct LaTeX spelling (see _symbol for the spacing).
_SYMBOLS: dict[str, str] = {
    "\u2212": "-",  # minus sign
    "\u2013": "-",  # en dash, used as a minus by some models
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u00d7": "\\times",
    "\u22c5": "\\cdot",
    "\u00b7": "\\cdot",
    "\u2219": "\\cdot",
    "\u00f7": "\\div",
    "\u2215": "/",
    "\u2044": "/",
    "\u2264": "\\le",
    "\u2a7d": "\\le",
    "\u2265": "\\ge",
    "\u2a7e": "\\ge",
    "\u2260": "\\neq",
    "\u2248": "\\approx",
    "\u00b1": "\\pm",
    "\u2213": "\\mp",
    "\u221e": "\\infty",
    "\u222a": "\\cup",
    "\u2229": "\\cap",
    "\u2208": "\\in",
    "\u00b0": "^\\circ",
    "\u03c0": "\\pi",
    "\u03b1": "\\alpha",
    "\u03b2": "\\beta",
    "\u03b3": "\\gamma",
    "\u03b4": "\\delta",
    "\u03b8": "\\theta",
    "\u03bb": "\\lambda",
    "\u03bc": "\\mu",
    "\u03c3": "\\sigma",
    "\u03c6": "\\phi",
    "\u03c9": "\\omega",
}

_VULGAR: dict[str, tuple[int, int]] = {
    "\u00bd": (1, 2),
    "\u2153": (1, 3),
    "\u2154": (2, 3),
    "\u00bc": (1, 4),
    "\u00be": (3, 4),
    "\u2155": (1, 5),
    "\u2156": (2, 5),
    "\u2157": (3, 5),
    "\u2158": (4, 5),
    "\u2159": (1, 6),
    "\u215a": (5, 6),
    "\u215b": (1, 8),
    "\u215c": (3, 8),
    "\u215d": (5, 8),
    "\u215e": (7, 8),
}

_SYMBOL_RE = re.compile("[" + "".join(_SYMBOLS) + "]")
_VULGAR_RE = re.compile("[" + "".join(_VULGAR) + "]")
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ", "0123456789+-=()ni")
_SUBSCRIPTS = str.maketrans("₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎", "0123456789+-=()")
_SUPER_RUN_RE = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ]+")
_SUB_RUN_RE = re.compile("[₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎]+")
_RADICALS = {"\u221a": "\\sqrt", "\u221b": "\\sqrt[3]", "\u221c": "\\sqrt[4]"}
# The radicand of a bare radical: a number, a macro such as \pi, or one letter.
_RADICAND_RE = re.compile(r"\s*(\d+(?:\.\d+)?|\\[A-Za-z]+|[A-Za-z])")
# A space inside a number used as a thousands separator: "70 000", "1 234 567".
_GROUP_SPACE_RE = re.compile(r"(?<=\d)[\u00a0\u2009\u202f\u2007](?=\d{3}(?!\d))")
_SPACES = "\u00a0\u2009\u202f\u2007"
_SPECIAL = "".join([*_SYMBOLS, *_VULGAR, *_RADICALS]) + "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿⁱ₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎" + _SPACES
_ANY_SPECIAL_RE = re.compile(f"[{re.escape(_SPECIAL)}]")


def _radicals(text: str) -> str:
    """√x, √12, √(a+b), ∛8 -> \\sqrt{x}, \\sqrt{12}, \\sqrt{a+b}, \\sqrt[3]{8}."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        macro = _RADICALS.get(ch)
        if macro is None:
            out.append(ch)
            i += 1
            continue
        j = i + 1
        while j < len(text) and text[j] == " ":
            j += 1
        if j < len(text) and text[j] in "({":
            close = {"(": ")", "{": "}"}[text[j]]
            depth, k = 0, j
            while k < len(text):
                if text[k] == text[j]:
                    depth += 1
                elif text[k] == close:
                    depth -= 1
                    if depth == 0:
                        break
                k += 1
            if k < len(text):
                out.append(f"{macro}{{{text[j + 1 : k]}}}")
                i = k + 1
                continue
        m = _RADICAND_RE.match(text, i + 1)
        if m:
            out.append(f"{macro}{{{m.group(1)}}}")
            i = m.end()
        else:
            out.append(macro)
            i += 1
    return "".join(out)


def _symbol(m: re.Match[str]) -> str:
    """A symbol's LaTeX; a macro keeps a space only where a letter follows ("\\pi r")."""
    latex = _SYMBOLS[m.group(0)]
    if latex[-1].isalpha():
        nxt = m.string[m.end() : m.end() + 1]
        return latex + " " if nxt.isalpha() else latex
    return latex


def _vulgar(m: re.Match[str]) -> str:
    num, den = _VULGAR[m.group(0)]
    return f"\\frac{{{num}}}{{{den}}}"


def unicode_to_latex(text: str) -> str:
    """Rewrite the Unicode math in ``text`` as LaTeX; ASCII text is returned as is."""
    if not text or _ANY_SPECIAL_RE.search(text) is None:
        return text
    s = _GROUP_SPACE_RE.sub("", text)
    s = re.sub(f"[{_SPACES}]", " ", s)
    s = _SYMBOL_RE.sub(_symbol, s)
    s = _radicals(s)
    s = _VULGAR_RE.sub(_vulgar, s)
    s = _SUPER_RUN_RE.sub(lambda m: "^{" + m.group(0).translate(_SUPERSCRIPTS) + "}", s)
    return _SUB_RUN_RE.sub(lambda m: "_{" + m.group(0).translate(_SUBSCRIPTS) + "}", s)
