"""The procedural workload: deterministic, harder with the level, answers recomputable."""

from __future__ import annotations

import re
import statistics

import pytest

from reasonperf.errors import UsageError
from reasonperf.workload import load_workload
from reasonperf.workload.procedural import OPS, THEMES, apply_op, generate, solve


def _sentence_patterns() -> list[tuple[str | None, re.Pattern[str]]]:
    """Each theme sentence as a regex capturing its number, tagged with its operation."""
    out: list[tuple[str | None, re.Pattern[str]]] = []
    for theme in THEMES:
        for op in (None, *OPS):
            template = theme.opening if op is None else getattr(theme, op)
            regex = re.escape(template).replace(re.escape("{k}"), r"(\d+)")
            out.append((op, re.compile(regex)))
    return out


def recompute_from_text(prompt: str) -> int:
    """Solve a problem from its wording alone, independently of the generator's meta."""
    patterns = _sentence_patterns()
    value: int | None = None
    rest = prompt
    while True:
        for op, pattern in patterns:
            m = pattern.match(rest)
            if m:
                k = int(m.group(1))
                value = k if op is None else apply_op(value, op, k)  # type: ignore[arg-type]
                rest = rest[m.end() :].lstrip()
                break
        else:
            break
    assert value is not None and rest in {t.question for t in THEMES}, rest
    return value


def test_deterministic_for_a_seed() -> None:
    a = load_workload("procedural", options={"n": 30}, seed=7)
    b = load_workload("procedural", options={"n": 30}, seed=7)
    c = load_workload("procedural", options={"n": 30}, seed=8)
    assert [(p.prompt, p.gold) for p in a] == [(p.prompt, p.gold) for p in b]
    assert [p.prompt for p in a] != [p.prompt for p in c]
    # Asking for more never changes the earlier problems.
    longer = load_workload("procedural", options={"n": 40}, seed=7)
    assert [p.prompt for p in longer[:30]] == [p.prompt for p in a]


def test_answers_verified_by_recomputation() -> None:
    problems = generate(100, seed=3)
    for p in problems:
        assert p.gold == str(recompute_from_text(p.prompt))
        assert p.gold == str(solve(p.meta["start"], p.meta["ops"]))
        assert int(p.gold) >= 1
        assert (p.grader, p.domain, p.dataset) == ("math", "math", "procedural")


def test_levels_grow_in_steps_and_size() -> None:
    by_level = {level: generate(60, [level], seed=1) for level in range(1, 6)}
    steps = [statistics.mean(len(p.meta["ops"]) for p in by_level[lv]) for lv in range(1, 6)]
    sizes = [statistics.median(int(p.gold) for p in by_level[lv]) for lv in range(1, 6)]
    assert steps == sorted(steps) and len(set(steps)) == 5
    assert sizes == sorted(sizes) and sizes[-1] > 10 * sizes[0]
    assert {p.difficulty for p in by_level[4]} == {"4"}


def test_levels_option_spreads_n() -> None:
    problems = load_workload("procedural", options={"levels": [1, 3], "n": 50})
    assert len(problems) == 50
    assert sum(p.difficulty == "1" for p in problems) == 25
    assert sum(p.difficulty == "3" for p in problems) == 25
    assert len({p.problem_id for p in problems}) == 50
    ranged = load_workload("procedural", options={"levels": "2-4", "n": 6})
    assert {p.difficulty for p in ranged} == {"2", "3", "4"}
    assert len(load_workload("procedural", limit=12)) == 12


def test_bad_options() -> None:
    with pytest.raises(UsageError, match="'levels' must be levels 1-5"):
        load_workload("procedural", options={"levels": [0, 9]})
    with pytest.raises(UsageError, match=r"'n' must be >= 1 \(got 0\)"):
        load_workload("procedural", options={"n": 0})
    with pytest.raises(UsageError, match="option 'n' must be an integer"):
        load_workload("procedural", options={"n": "many"})
