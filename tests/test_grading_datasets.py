"""Each real gold, fed back as the response, must grade correct (100 %), and a shifted
gold (the next item's answer) must almost never do so.

Uses the shared dataset copies (skipped where tests/conftest.py's ``shared_datasets``
fixture does not find them). No exclusions are needed at present: EXCLUDED lists any
item left out, with the reason, and the test checks each still exists.
"""

from __future__ import annotations

import json
from pathlib import Path

from reasonperf.grading import grade_rows

# (file, item id) -> why it cannot round-trip. Keep empty unless a gold is unusable.
EXCLUDED: dict[tuple[str, str], str] = {}

# A shifted gold may legitimately equal its neighbour ("3" next to "3", "x=5" next to
# "5"); anything above this share means the grader accepts wrong answers.
MAX_SHIFTED_CORRECT = 0.03


def _load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _golds(shared: Path) -> dict[str, tuple[str, list[tuple[str, str]], list[str]]]:
    """grader name -> (file, [(item id, gold as stored)], [gold answer text])."""
    gsm = _load(shared / "gsm8k_test.jsonl")
    math500 = _load(shared / "math500.jsonl")
    aime = _load(shared / "aime24.jsonl")
    return {
        "gsm8k": (
            "gsm8k_test.jsonl",
            [(str(d["idx"]), d["answer"]) for d in gsm],
            [d["answer"].rsplit("####", 1)[1].strip() for d in gsm],
        ),
        "math": (
            "math500.jsonl",
            [(d["unique_id"], d["answer"]) for d in math500],
            [d["answer"] for d in math500],
        ),
        "aime": (
            "aime24.jsonl",
            [(str(d["id"]), d["answer"]) for d in aime],
            [d["answer"] for d in aime],
        ),
    }


def _round_trip(shared: Path, template: str, shift: int) -> dict[str, list[tuple[str, dict]]]:
    """Grade ``template % answer`` (answer of the item ``shift`` further) for every item."""
    rows, where = [], []
    for grader, (file, items, answers) in _golds(shared).items():
        for i, (item_id, gold) in enumerate(items):
            if (file, item_id) in EXCLUDED:
                continue
            answer = answers[(i + shift) % len(answers)]
            rows.append(
                {
                    "answer_text": template % answer,
                    "reasoning_text": None,
                    "gold": gold,
                    "grader": grader,
                    "finish_reason": "stop",
                }
            )
            where.append((grader, f"{file}:{item_id}"))
    out: dict[str, list[tuple[str, dict]]] = {}
    for (grader, label), graded in zip(where, grade_rows(rows, workers=2), strict=True):
        out.setdefault(grader, []).append((label, graded))
    return out


def test_gold_round_trip_is_100_percent(shared_datasets):
    for file, item_id in EXCLUDED:
        ids = {i for _, items, _ in _golds(shared_datasets).values() for i, _ in items}
        assert item_id in ids, f"stale exclusion {file}:{item_id}"
    results = _round_trip(shared_datasets, "The answer is \\boxed{%s}", shift=0)
    assert set(results) == {"gsm8k", "math", "aime"}
    assert len(results["math"]) + len(EXCLUDED) >= 500
    failures = [
        f"{label}: {g}"
        for items in results.values()
        for label, g in items
        if g["correct"] is not True
    ]
    for line in failures:
        print("FAIL", line)
    assert not failures, "\n".join(failures)


def test_shifted_gold_is_wrong(shared_datasets):
    results = _round_trip(shared_datasets, "The answer is \\boxed{%s}", shift=1)
    for grader, items in results.items():
        accepted = [label for label, g in items if g["correct"]]
        assert len(accepted) / len(items) <= MAX_SHIFTED_CORRECT, (grader, accepted)


def test_math_answer_line_round_trip(shared_datasets):
    """The "paper" style asks for a last line "Answer: $ANSWER"; golds in that form pass."""
    math500 = _load(shared_datasets / "math500.jsonl")
    rows = [
        {"answer_text": f"Work.\nAnswer: ${d['answer']}$", "gold": d["answer"], "grader": "math"}
        for d in math500
    ]
    out = grade_rows(rows, workers=2)
    failures = [
        (d["unique_id"], g) for d, g in zip(math500, out, strict=True) if g["correct"] is not True
    ]
    assert not failures, failures
    assert {g["extraction_method"] for g in out} == {"answer_line"}
