"""Graders against a hand-labelled corpus (tests/data/grading_corpus.jsonl), plus the
public grading API: grade(), grade_rows() determinism, truncation, timeouts."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest

from reasonperf.errors import UsageError
from reasonperf.grading import GRADERS, grade, grade_rows
from reasonperf.grading.extract import all_boxed, last_boxed, strip_reasoning
from reasonperf.grading.pool import OK, TIMEOUT, map_isolated

CORPUS = Path(__file__).parent / "data" / "grading_corpus.jsonl"
MIN_AGREEMENT = 0.98


def _corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line]


def _rows(cases: list[dict]) -> list[dict]:
    return [
        {
            "answer_text": c["response"],
            "reasoning_text": None,
            "gold": c["gold"],
            "grader": c["kind"],
            "finish_reason": "stop",
        }
        for c in cases
    ]


def test_corpus_is_large_and_covers_every_grader():
    cases = _corpus()
    assert len(cases) >= 150
    assert {c["kind"] for c in cases} == {"math", "gsm8k", "aime", "choice"}
    assert all(isinstance(c["correct"], bool) for c in cases)


@pytest.fixture(scope="module")
def corpus_graded() -> tuple[list[dict], list[dict]]:
    """The corpus graded once through the process pool (spawning workers costs seconds)."""
    cases = _corpus()
    return cases, grade_rows(_rows(cases), workers=2)


def test_corpus_agreement(corpus_graded):
    cases, graded = corpus_graded
    disagreements = [
        f"{c['kind']}: {c['response']!r} gold={c['gold']!r} expected={c['correct']} "
        f"got={g['correct']} via {g['extraction_method']} ({g['extracted_answer']!r}) - {c['note']}"
        for c, g in zip(cases, graded, strict=True)
        if g["correct"] != c["correct"]
    ]
    for line in disagreements:
        print("DISAGREE", line)
    agreement = 1 - len(disagreements) / len(cases)
    assert agreement >= MIN_AGREEMENT, "\n".join(disagreements)


def test_grade_rows_is_deterministic(corpus_graded):
    cases, graded = corpus_graded
    assert grade_rows(_rows(cases), workers=2) == graded


def test_grade_rows_in_process_matches_pool(corpus_graded):
    cases, graded = corpus_graded
    picked = [i for i, c in enumerate(cases) if c["kind"] == "math"][:20]
    in_process = grade_rows(_rows([cases[i] for i in picked]), workers=0)
    assert in_process == [graded[i] for i in picked]


def test_boxed_extraction_nested_and_last_wins():
    text = r"try \boxed{1} then \boxed{\frac{1}{\sqrt{2}}} and finally \boxed{\frac{a}{b}}"
    assert all_boxed(text) == ["1", r"\frac{1}{\sqrt{2}}", r"\frac{a}{b}"]
    assert last_boxed(text) == r"\frac{a}{b}"
    assert last_boxed(r"done: \boxed{\frac{1}{") is None  # truncated box is not an answer
    assert last_boxed("no box here") is None


def test_strip_reasoning():
    assert strip_reasoning("<think>a</think>b</think>c") == "c"
    assert strip_reasoning("<think>never closed \\boxed{3}") == ""
    assert strip_reasoning(None) == ""


def test_grade_public_api():
    g = grade("math", r"so \boxed{1} no, \boxed{\dfrac{11}{3}}", r"\frac{11}{3}")
    assert (g.correct, g.extracted, g.method) == (True, r"\dfrac{11}{3}", "boxed")
    g = grade("gsm8k", "nothing numeric here", "#### 4")
    assert (g.correct, g.extracted, g.method) == (False, None, "none")
    g = grade("choice", "Answer: (B)", None)
    assert (g.correct, g.extracted) == (None, "B")
    assert set(GRADERS.names()) >= {"math", "gsm8k", "aime", "choice"}
    with pytest.raises(UsageError, match="grader"):
        grade("nope", "x", "y")


def test_grade_rows_truncation_and_missing_gold():
    rows = [
        {
            "answer_text": r"\boxed{4}",
            "reasoning_text": "r",
            "gold": "4",
            "grader": "aime",
            "finish_reason": "length",
        },
        {
            "answer_text": "",
            "reasoning_text": "thinking and thinking",
            "gold": "4",
            "grader": "aime",
            "finish_reason": "stop",
        },
        {
            "answer_text": r"\boxed{4}",
            "reasoning_text": None,
            "gold": None,
            "grader": "aime",
            "finish_reason": "stop",
        },
        {
            "answer_text": "hello",
            "reasoning_text": None,
            "gold": "4",
            "grader": None,
            "finish_reason": "stop",
        },
        {
            "answer_text": "<think>unclosed",
            "reasoning_text": None,
            "gold": "4",
            "grader": "gsm8k",
            "finish_reason": "stop",
        },
    ]
    out = grade_rows(rows, workers=0)
    assert [o["truncated"] for o in out] == [True, True, False, False, True]
    assert [o["correct"] for o in out] == [True, False, None, None, False]
    assert out[2]["extracted_answer"] == "4"  # still extracted without gold (for cons@n)
    assert out[3] == {
        "extracted_answer": None,
        "extraction_method": None,
        "correct": None,
        "truncated": False,
    }


def test_math_timeout_counts_as_wrong_and_others_still_graded():
    slow = r"\boxed{9^{9^{9^{9}}}}"  # sympy tries to evaluate this power tower
    rows = [
        {"answer_text": slow, "gold": "5", "grader": "math"},
        {"answer_text": r"\boxed{5}", "gold": "5", "grader": "math"},
    ]
    out = grade_rows(rows, workers=1, timeout_s=1)
    assert out[0]["extraction_method"] == "timeout"
    assert out[0]["correct"] is False
    assert out[1]["correct"] is True


def _hang_ignoring_alarm(x: str) -> str:
    """Stands in for a worker stuck in C code: SIGALRM blocked, never returns."""
    if x == "hang":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        threading.Event().wait()
    return x * 2


def test_pool_outer_guard_kills_a_stuck_worker():
    items = [("hang",), ("ok",)]
    out = map_isolated(_hang_ignoring_alarm, items, workers=2, timeout_s=0.2, guard_s=5)
    assert out == [(TIMEOUT, None), (OK, "okok")]
