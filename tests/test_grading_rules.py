"""Unit tests for the extraction rules added for real model outputs (issue 9.14):
Unicode math, boxed lists, exact arithmetic, irrational factors, number words, inequalities
as intervals, lower-case and multi-letter choices. The corpus test measures agreement;
these pin each rule down on its own."""

from __future__ import annotations

from fractions import Fraction

import pytest

from reasonperf.grading import grade
from reasonperf.grading.choice import extract_choice
from reasonperf.grading.extract import final_boxed, last_boxed, last_line_bold
from reasonperf.grading.numeric import number_in, spelled_out
from reasonperf.grading.rational import exact_value
from reasonperf.grading.unicode_math import unicode_to_latex


@pytest.mark.parametrize(
    ("text", "latex"),
    [
        ("3√13", r"3\sqrt{13}"),
        ("√(36+81)", r"\sqrt{36+81}"),
        ("√π", r"\sqrt{\pi}"),
        ("∛8", r"\sqrt[3]{8}"),
        ("x⁵ − x⁴ + 1", "x^{5} - x^{4} + 1"),
        ("H₂O", "H_{2}O"),
        ("½", r"\frac{1}{2}"),
        ("1¾", r"1\frac{3}{4}"),
        ("−2 ≤ x < 7", r"-2 \le x < 7"),
        ("(−∞, 2) ∪ (3, ∞)", r"(-\infty, 2) \cup (3, \infty)"),
        ("1 ± √19", r"1 \pm \sqrt{19}"),
        ("145°", r"145^\circ"),
        ("2πr", r"2\pi r"),
        ("3 × 4 · 5 ÷ 6", r"3 \times 4 \cdot 5 \div 6"),
        ("70\u202f000 and 1\u00a0234\u00a0567", "70000 and 1234567"),
        ("seventy\u2011two", "seventy-two"),
        ("plain ASCII stays: x^2 <= 4", "plain ASCII stays: x^2 <= 4"),
    ],
)
def test_unicode_to_latex(text, latex):
    assert unicode_to_latex(text) == latex


def test_final_boxed_joins_a_list_but_not_a_revision():
    listed = r"The roots are $\boxed{3}$, $\boxed{5}$, and $\boxed{7}$."
    assert final_boxed(listed) == "3, 5, 7"
    assert last_boxed(listed) == "7"
    assert final_boxed(r"\(\boxed{1}\) \text{ and } \(\boxed{-2}\)") == "1, -2"
    assert final_boxed(r"First \boxed{6}. Re-checking: \boxed{8}.") == "8"
    assert final_boxed(r"so $m/n = \boxed{1/115}$ and $m+n = \boxed{116}$") == "116"
    two_roots = r"$x = \boxed{3 + 2\sqrt{2}}$ and $x = \boxed{3 - 2\sqrt{2}}$"
    assert final_boxed(two_roots) == r"3 + 2\sqrt{2}, 3 - 2\sqrt{2}"
    assert final_boxed(r"Thus $\boxed{(1, 2)}$ \[\boxed{(1,2)}\]") == "(1, 2)"  # repeated
    assert final_boxed("no box") is None


def test_last_line_bold():
    assert last_line_bold("**Step 1: 12**\nShe pays **$64**.") == "$64"
    assert last_line_bold("**Total: $64.00** (16 glasses at $4)") == "$64.00"
    assert last_line_bold("**Step 1: 12 eggs**\nSo she earns 18.") is None
    assert last_line_bold("") is None


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("2^5+1", Fraction(33)),
        (r"\frac{208}{2}", Fraction(104)),
        (r"\frac{\frac{1}{2}}{3}", Fraction(1, 6)),
        (r"\frac12", Fraction(1, 2)),
        (r"3 \times 6", Fraction(18)),
        (r"7 \cdot 2 - 1", Fraction(13)),
        ("2^{10}", Fraction(1024)),
        ("1,000 + 0.5", Fraction(2001, 2)),
        ("-(4)", Fraction(-4)),
        (r"12\sqrt{2}", None),
        (r"100\pi", None),
        ("3x", None),
        ("3, 5", None),
        ("2^{1000}", None),  # exponent beyond the bound
        ("1/0", None),
        ("12 (3)", None),  # a call, not arithmetic
        ("", None),
    ],
)
def test_exact_value(expr, value):
    assert exact_value(expr) == value


@pytest.mark.parametrize(
    ("span", "value"),
    [
        ("18 dollars", Fraction(18)),
        ("$18/day", Fraction(18)),
        (r"7 (because 21 \div 3 = 7)", Fraction(7)),
        ("2^5+1", Fraction(33)),
        (r"x = 16.97 \approx 17", Fraction(1697, 100)),
        (r"321\sqrt{2}", None),
        (r"\frac{45}{\pi}", None),
        (r"100\pi", None),
    ],
)
def test_number_in_rejects_irrational_factors(span, value):
    assert number_in(span) == value


def test_spelled_out_numbers():
    assert spelled_out("seventy-two clips") == "72 clips"
    assert spelled_out("three hundred and twelve") == "312"
    assert spelled_out("two hours") == "2 hours"


@pytest.mark.parametrize(
    ("kind", "response", "gold", "correct", "method"),
    [
        ("gsm8k", "Answer: seventy-two clips", "72", True, "answer_words"),
        ("gsm8k", "The answer is one thousand two hundred dollars.", "1200", True, "answer_words"),
        ("gsm8k", "Answer: seventy clips", "72", False, "answer_words"),
        ("gsm8k", "Answer: 70\u202f000", "70000", True, "answer_line"),
        ("gsm8k", "**Final answer: $42$ dollars** (about 3 per day)", "42", True, "answer_line"),
        ("gsm8k", r"\boxed{−13}", "13", False, "boxed"),
        ("aime", r"\boxed{321\sqrt{2}}", "321", False, "boxed"),
        ("aime", r"\boxed{12\sqrt{2}}", "017", False, "boxed"),
        ("aime", r"\boxed{\frac{33}{2}}", "016", False, "boxed"),
        ("aime", r"\boxed{2^5+1}", "033", True, "boxed"),
        ("gsm8k", "**Total: $64.00** (16 glasses at $4 each)", "64", True, "bold"),
        ("gsm8k", "**Step 1: 12 boxes**\nThen 12 + 6 = 18 in total.", "18", True, "last_number"),
    ],
)
def test_numeric_rules(kind, response, gold, correct, method):
    g = grade(kind, response, gold)
    assert (g.correct, g.method) == (correct, method)


@pytest.mark.parametrize(
    ("response", "gold", "correct"),
    [
        (r"\boxed{x > 2}", r"(2,\infty)", True),
        (r"\boxed{x \geq 2}", r"(2,\infty)", False),
        (r"\boxed{-2 < x \le 3}", "(-2, 3]", True),
        (r"\boxed{−2 ≤ x ≤ 7}", r"x \in [-2,7]", True),
        (r"\boxed{x < 2 \text{ or } x > 3}", r"(-\infty, 2) \cup (3, \infty)", True),
        (r"\boxed{(2, 5]}", "2 < x <= 5", True),  # an inequality gold works too
        (r"\boxed{3√13}", r"3\sqrt{13}", True),
        (r"\boxed{x⁵ − 1}", "x^5 - 1", True),
        (r"\boxed{½}", r"\frac{1}{2}", True),
        (r"\boxed{3\sqrt{13}.}", r"3\sqrt{13}", True),
        (r"\boxed{(1.5, -13)}", r"\left( \frac{3}{2}, -13 \right)", True),
        (r"Roots: $\boxed{3}$, $\boxed{5}$ and $\boxed{7}$.", "3, 5, 7", True),
        (r"Roots: $\boxed{3}$ and $\boxed{5}$.", "3, 5, 7", False),
        (r"Maybe \boxed{3}. No wait, \boxed{5}.", "3", False),
        (r"$x = \boxed{1}$ and $x = \boxed{-2}$", "1,-2", True),
        (r"\boxed{2 < x < 102, x \neq 12}", r"(2,12) \cup (12,102)", True),
        (r"\boxed{2 < x < 102}", r"(2,12) \cup (12,102)", False),
        (
            r"\boxed{\frac{\pi^2}{8} \le f(x) \le \pi^2}",
            r"\left[\frac{\pi^2}{8}, \pi^2\right]",
            True,
        ),
        (r"\boxed{2x + 1 > 5}", r"(2, \infty)", False),  # a bound on 2x+1, not on x
        (r"\boxed{(-2, -14, -7)}", r"\begin{pmatrix} -2 \\ -14 \\ -7 \end{pmatrix}", True),
        (r"\boxed{(-2, -14, 7)}", r"\begin{pmatrix} -2 \\ -14 \\ -7 \end{pmatrix}", False),
        ("**Answer:** √5 m/s", r"\sqrt{5}", True),
        ("Answer: 12 square units", "12", True),
    ],
)
def test_math_rules(response, gold, correct):
    assert grade("math", response, gold).correct is correct


@pytest.mark.parametrize(
    ("response", "letters", "method"),
    [
        ("Answer: b", "B", "answer"),
        ("ANSWER: d", "D", "answer"),
        ("**Answer:** *c*", "C", "answer"),
        ("Answer: Option D", "D", "answer"),
        ("Answer: (c)", "C", "answer"),
        ("The answer is: a", "A", "fallback"),
        ("So the answer is option (c).", "C", "fallback"),
        ("Answer: A and C", "A, C", "answer"),
        ("Answer: B, D", "B, D", "answer"),
        ("Answer: A or B", "A, B", "answer"),
        (r"\boxed{A, C}", "A, C", "boxed"),
        (r"\boxed{AC}", "A, C", "boxed"),
        (r"\boxed{b}", "B", "boxed"),
        ("Answer: B (since A and C are ruled out)", "B", "answer"),
        ("Answer: C. The energy is 4.5 eV, about 2 times that of A.", "C", "answer"),
        ("Answer: B, a two-step mechanism", "B", "answer"),
        ("Answer: a dog is faster", None, "none"),
        ("The answer is a bit subtle.", None, "none"),
    ],
)
def test_choice_rules(response, letters, method):
    assert extract_choice(response) == (letters, method)


def test_multi_letter_answer_is_wrong_even_when_it_contains_the_gold():
    assert grade("choice", "Answer: A and C", "A").correct is False
    assert grade("choice", "Answer: a", "A").correct is True
