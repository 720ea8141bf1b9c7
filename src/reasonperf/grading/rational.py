"""Exact value of a small arithmetic answer ("2^5+1", "\\frac{208}{2}", "3 \\times 6").

The numeric graders (GSM8K, AIME) accept an answer that is a plain rational expression
and must reject one with an irrational factor ("12\\sqrt{2}" is not 17). sympy would do,
but these graders run in the main process, where sympy cannot be time-bounded; this
evaluator walks a Python AST of whitelisted nodes only, with bounded powers, so it is
fast and safe on any input. Anything else (a root, pi, a variable, a list) gives None.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

# Powers beyond these bounds are not what an answer looks like, and could be huge.
MAX_EXPONENT = 64
MAX_BASE_DIGITS = 12

_FRAC_RE = re.compile(r"\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_FRAC_DIGITS_RE = re.compile(r"\\frac\s*(\d)\s*(\d)")
_OPERATORS = (("\\times", "*"), ("\\cdot", "*"), ("\\div", "/"), ("^", "**"))
_GROUPED_RE = re.compile(r"(?<!\d)(\d{1,3}(?:,\d{3})+)(?![\d,])")
_ALLOWED_RE = re.compile(r"^[\d.+\-*/() ]+$")


def to_python(expr: str) -> str | None:
    """LaTeX arithmetic as a Python expression, or None when it holds anything else."""
    s = expr
    while True:
        replaced = _FRAC_RE.sub(r"((\1)/(\2))", s)
        replaced = _FRAC_DIGITS_RE.sub(r"((\1)/(\2))", replaced)
        if replaced == s:
            break
        s = replaced
    for latex, py in _OPERATORS:
        s = s.replace(latex, py)
    s = s.replace("{", "(").replace("}", ")")
    s = _GROUPED_RE.sub(lambda m: m.group(1).replace(",", ""), s)
    return s if _ALLOWED_RE.match(s) else None


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _value(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return Fraction(repr(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _value(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            return left / right
        if isinstance(node.op, ast.Pow):
            if right.denominator != 1 or abs(right) > MAX_EXPONENT:
                raise ValueError("exponent out of range")
            if len(str(abs(left.numerator))) > MAX_BASE_DIGITS:
                raise ValueError("base out of range")
            return left ** int(right)
    raise ValueError(f"not arithmetic: {ast.dump(node)}")


def exact_value(expr: str | None) -> Fraction | None:
    """The exact rational value of ``expr`` (cleaned LaTeX), or None."""
    if not expr or not expr.strip():
        return None
    py = to_python(expr.strip())
    if py is None:
        return None
    try:
        return _value(ast.parse(py, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError, MemoryError):
        return None
