"""What tiny-thinker and tiny-instruct are taught to write for a procedural problem.

The procedural generator stores every operation in ``problem.meta``; a trace replays them
one line per step ("45 + 17 = 62"). The thinker sometimes re-checks its whole derivation
("wait, let me check again.") with a probability that grows with the level, so reasoning
lengths are heavy-tailed within a level and grow with it. The prompt is the exact text a
run sends (``workload.prompts.build_messages`` with the r1 style).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reasonperf.records import Problem
from reasonperf.workload.procedural import apply_op, make_problem
from reasonperf.workload.prompts import build_messages

OP_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
RECHECK_LINE = "wait, let me check again."
# Probability of one more full re-check after each pass, per level (at temperature 1).
RECHECK_PROB = {1: 0.03, 2: 0.12, 3: 0.3, 4: 0.4, 5: 0.5}
MAX_PASSES = 4


@dataclass(frozen=True)
class Example:
    """One training example: the user message, and the assistant text after the prompt."""

    problem: Problem
    user: str
    completion: str  # for the thinker: reasoning + "</think>\n" + answer (no <think>)


def step_lines(problem: Problem) -> list[str]:
    """'start 45', then one 'a op k = b' line per operation of the problem."""
    value = int(problem.meta["start"])
    lines = [f"start {value}"]
    for op, k in problem.meta["ops"]:
        new = apply_op(value, str(op), int(k))
        lines.append(f"{value} {OP_SYMBOLS[str(op)]} {int(k)} = {new}")
        value = new
    return lines


def answer_line(problem: Problem) -> str:
    return f"The answer is \\boxed{{{problem.gold}}}."


def n_passes(level: int, rng: np.random.Generator) -> int:
    """1 + the number of re-checks: geometric, capped at MAX_PASSES."""
    passes = 1
    while passes < MAX_PASSES and rng.random() < RECHECK_PROB[level]:
        passes += 1
    return passes


def thinker_completion(problem: Problem, passes: int) -> str:
    lines = step_lines(problem)
    body: list[str] = []
    for i in range(passes):
        if i:
            body.append(RECHECK_LINE)
        body.extend(lines)
    return "\n".join(body) + "\n</think>\n" + answer_line(problem)


def instruct_completion(problem: Problem) -> str:
    return answer_line(problem)


def user_text(problem: Problem) -> str:
    messages, _, _ = build_messages(problem, style="r1")
    return messages[0]["content"]


def example(kind: str, index: int, level: int, seed: int) -> Example:
    """Example ``index`` of the training stream for ``seed`` (independent of the others)."""
    problem = make_problem(index, level, seed)
    if kind == "thinker":
        rng = np.random.default_rng([seed, index, level, 7])
        completion = thinker_completion(problem, n_passes(level, rng))
    else:
        completion = instruct_completion(problem)
    return Example(problem, user_text(problem), completion)


def level_for(index: int, seed: int, weights: Sequence[float]) -> int:
    """The level of training example ``index``: drawn with ``weights`` over levels 1-5."""
    rng = np.random.default_rng([seed, index, 11])
    p = np.asarray(weights, dtype=float)
    return int(rng.choice(len(p), p=p / p.sum())) + 1
