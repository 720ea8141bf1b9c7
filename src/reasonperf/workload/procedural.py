"""A procedural math workload: multi-step integer word problems, offline and verifiable.

Why our own generator: it needs no download, its answers are exact integers that any math
grader checks, and its difficulty is a dial (more steps, bigger numbers per level), which
is what the difficulty analyses need when no benchmark file is at hand.

Each problem is a start value followed by ``steps`` operations (add, subtract, multiply,
exact divide). The operations are stored in ``meta`` so the answer can be recomputed.
Every problem draws from its own generator seeded by ``(seed, index)``, so asking for more
problems never changes the earlier ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reasonperf.errors import UsageError
from reasonperf.records import Problem

LEVELS = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class LevelSpec:
    steps: int  # number of operations after the start value
    max_operand: int  # largest number added/subtracted (and start value)
    max_factor: int  # largest multiplier / divisor
    max_value: int  # no multiplication past this, so numbers stay readable


LEVEL_SPECS: dict[int, LevelSpec] = {
    1: LevelSpec(steps=2, max_operand=20, max_factor=3, max_value=100),
    2: LevelSpec(steps=3, max_operand=50, max_factor=4, max_value=500),
    3: LevelSpec(steps=4, max_operand=120, max_factor=6, max_value=2_000),
    4: LevelSpec(steps=6, max_operand=500, max_factor=9, max_value=20_000),
    5: LevelSpec(steps=8, max_operand=2000, max_factor=12, max_value=200_000),
}

OPS = ("add", "sub", "mul", "div")


@dataclass(frozen=True)
class Theme:
    """Wording of one story; ``{k}`` is the operand of each step."""

    opening: str  # "{k}" = start value
    add: str
    sub: str
    mul: str
    div: str
    question: str


THEMES: tuple[Theme, ...] = (
    Theme(
        "A warehouse holds {k} boxes.",
        "A truck delivers {k} more boxes.",
        "{k} boxes are shipped out.",
        "The stock is then multiplied by {k} after a large order arrives.",
        "The boxes are split evenly among {k} stores and the warehouse keeps one share.",
        "How many boxes does the warehouse hold now?",
    ),
    Theme(
        "A library has {k} books on a shelf.",
        "Volunteers add {k} books.",
        "Readers borrow {k} books.",
        "The librarian makes the shelf {k} times as full.",
        "The books are divided into {k} equal piles and one pile stays on the shelf.",
        "How many books are on the shelf at the end?",
    ),
    Theme(
        "Mia has {k} dollars in savings.",
        "She earns {k} dollars.",
        "She spends {k} dollars.",
        "An investment multiplies her savings by {k}.",
        "She shares her savings equally with {k} people, herself included, and keeps her share.",
        "How many dollars does Mia have now?",
    ),
    Theme(
        "A bus starts its route with {k} passengers.",
        "At the next stop {k} passengers get on.",
        "At the following stop {k} passengers get off.",
        "A festival crowd makes the number of passengers {k} times larger.",
        "The passengers are split evenly across {k} buses and this bus keeps one group.",
        "How many passengers are on the bus now?",
    ),
    Theme(
        "A farm has {k} apples in storage.",
        "The orchard yields {k} more apples.",
        "{k} apples are sold at the market.",
        "A record harvest multiplies the stored apples by {k}.",
        "The apples are packed into {k} equal crates and the farm keeps one crate.",
        "How many apples does the farm have in storage now?",
    ),
)


def apply_op(value: int, op: str, k: int) -> int:
    """One step; ``div`` is exact by construction (the generator only picks divisors)."""
    if op == "add":
        return value + k
    if op == "sub":
        return value - k
    if op == "mul":
        return value * k
    if op == "div":
        if value % k:
            raise ValueError(f"{value} is not divisible by {k}")
        return value // k
    raise ValueError(f"unknown op {op!r}")


def solve(start: int, ops: Sequence[Sequence[str | int]]) -> int:
    """Recompute an answer from ``meta["start"]`` and ``meta["ops"]``."""
    value = start
    for op, k in ops:
        value = apply_op(value, str(op), int(k))
    return value


def parse_levels(levels: object) -> list[int]:
    """Accept [1, 3], "1,3", 2 or "1-5"; reject anything outside 1..5."""
    if isinstance(levels, int):
        items: list[object] = [levels]
    elif isinstance(levels, str):
        text = levels.strip()
        if "-" in text and "," not in text:
            lo, _, hi = text.partition("-")
            try:
                items = list(range(int(lo), int(hi) + 1))
            except ValueError:
                items = [text]
        else:
            items = [t for t in text.split(",") if t.strip()]
    elif isinstance(levels, Sequence):
        items = list(levels)
    else:
        items = [levels]
    out: list[int] = []
    for item in items:
        try:
            level = int(str(item).strip())
        except ValueError:
            level = -1
        if level not in LEVEL_SPECS:
            raise UsageError(
                f"procedural option 'levels' must be levels 1-5, e.g. levels=1,3 (got {levels!r})"
            )
        if level not in out:
            out.append(level)
    if not out:
        raise UsageError("procedural option 'levels' is empty; use e.g. levels=1,3")
    return out


def _pick_op(rng: np.random.Generator, value: int, spec: LevelSpec) -> tuple[str, int]:
    divisors = [d for d in range(2, spec.max_factor + 1) if value and value % d == 0]
    candidates = ["add"]
    if value * 2 <= spec.max_value:
        candidates.append("mul")
    if value > 2:
        candidates.append("sub")
    if divisors:
        candidates.append("div")
    op = candidates[int(rng.integers(len(candidates)))]
    # Operands start at 2 so every sentence reads in the plural ("2 books").
    if op == "add":
        return op, int(rng.integers(2, spec.max_operand + 1))
    if op == "sub":
        # Keep at least 1 so later steps stay meaningful (0 * k is no work).
        return op, int(rng.integers(2, min(value - 1, spec.max_operand) + 1))
    if op == "mul":
        top = max(2, min(spec.max_factor, spec.max_value // value))
        return op, int(rng.integers(2, top + 1))
    return op, divisors[int(rng.integers(len(divisors)))]


def make_problem(index: int, level: int, seed: int) -> Problem:
    """Problem ``index`` of the stream for ``seed``, at ``level``."""
    spec = LEVEL_SPECS[level]
    rng = np.random.default_rng([seed, index, level])
    theme = THEMES[int(rng.integers(len(THEMES)))]
    start = int(rng.integers(max(2, spec.max_operand // 4), spec.max_operand + 1))
    value = start
    ops: list[list[str | int]] = []
    sentences = [theme.opening.format(k=start)]
    for _ in range(spec.steps):
        op, k = _pick_op(rng, value, spec)
        value = apply_op(value, op, k)
        ops.append([op, k])
        sentences.append(getattr(theme, op).format(k=k))
    sentences.append(theme.question)
    return Problem(
        dataset="procedural",
        problem_id=f"proc-{index:05d}-L{level}",
        prompt=" ".join(sentences),
        gold=str(value),
        grader="math",
        difficulty=str(level),
        domain="math",
        meta={"level": level, "n_steps": spec.steps, "start": start, "ops": ops},
    )


def generate(n: int, levels: Sequence[int] = LEVELS, seed: int = 0) -> list[Problem]:
    """``n`` problems cycling through ``levels`` (n=50, levels=[1, 3] -> 25 of each)."""
    if n < 1:
        raise UsageError(f"procedural option 'n' must be >= 1 (got {n})")
    return [make_problem(i, levels[i % len(levels)], seed) for i in range(n)]
