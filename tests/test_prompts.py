"""Prompt styles, seeded choice shuffling and user templates (made-up problems only)."""

from __future__ import annotations

import pytest

from reasonperf.errors import UsageError
from reasonperf.records import Problem
from reasonperf.workload.prompts import LETTERS, build_messages, permutation

MATH = Problem(dataset="toy", problem_id="m1", prompt="What is 2 + 3?", gold="5", grader="math")
AIME = Problem(dataset="toy", problem_id="a1", prompt="Find n.", gold="025", grader="aime")
GSM = Problem(
    dataset="toy", problem_id="g1", prompt="How many pens?", gold="#### 4", grader="gsm8k"
)
CHAT = Problem(dataset="toy", problem_id="c1", prompt="Tell me a joke.", grader=None)
CHOICES = ["red", "green", "blue", "yellow"]
MC = Problem(
    dataset="toy",
    problem_id="q1",
    prompt="Which colour is the sky?",
    gold="blue",
    grader="choice",
    choices=CHOICES,
)


def test_r1_math_has_no_system_prompt_and_the_recipe_suffix():
    messages, gold, meta = build_messages(MATH)
    assert messages == [
        {
            "role": "user",
            "content": "What is 2 + 3?\nPlease reason step by "
            "step, and put your final answer within \\boxed{}.",
        }
    ]
    assert gold == "5"
    assert meta == {"prompt_style": "r1"}


def test_choice_is_shuffled_and_gold_follows_the_permutation():
    for sample_index in range(6):
        messages, gold, meta = build_messages(MC, sample_index=sample_index, seed=7)
        perm = meta["permutation"]
        assert sorted(perm) == [0, 1, 2, 3]
        shown = [CHOICES[i] for i in perm]
        content = messages[0]["content"]
        for pos, text in enumerate(shown):
            assert f"{LETTERS[pos]}) {text}" in content
        assert shown[LETTERS.index(gold)] == "blue"
        assert "\\boxed{}" in content and "letter" in content


def test_permutation_is_seeded_per_problem_sample_and_seed():
    a = build_messages(MC, sample_index=3, seed=1)
    assert build_messages(MC, sample_index=3, seed=1) == a  # same inputs, same prompt
    perms = {tuple(build_messages(MC, sample_index=i, seed=1)[2]["permutation"]) for i in range(20)}
    assert len(perms) > 1  # samples see different orders
    seeds = {tuple(permutation("q1", 0, s, 4)) for s in range(20)}
    assert len(seeds) > 1
    # Stable across processes and Python versions (SHA-256 seeded), pinned here:
    assert permutation("q1", 0, 0, 4) == [0, 2, 1, 3]
    assert permutation("q1", 1, 0, 4) == [2, 1, 3, 0]


def test_gold_given_as_letter_and_no_shuffle_option():
    p = Problem(
        dataset="toy",
        problem_id="q2",
        prompt="Pick.",
        gold="C",
        grader="choice",
        choices=CHOICES,
        meta={"shuffle_choices": False},
    )
    messages, gold, meta = build_messages(p)
    assert gold == "C" and meta["permutation"] == [0, 1, 2, 3]
    assert "A) red\nB) green\nC) blue\nD) yellow" in messages[0]["content"]


def test_bad_choice_problems_raise_usage_errors():
    bad_gold = Problem(
        dataset="toy", problem_id="q3", prompt="?", gold="purple", grader="choice", choices=CHOICES
    )
    with pytest.raises(UsageError, match="gold"):
        build_messages(bad_gold)
    no_choices = Problem(dataset="toy", problem_id="q4", prompt="?", gold="A", grader="choice")
    with pytest.raises(UsageError, match="choices"):
        build_messages(no_choices)


def test_paper_templates():
    math_text = build_messages(MATH, style="paper")[0][0]["content"]
    assert "Answer: $ANSWER" in math_text and "What is 2 + 3?" in math_text
    aime_text = build_messages(AIME, style="paper")[0][0]["content"]
    assert "\\boxed{}" in aime_text and "integer" in aime_text
    mc_messages, mc_gold, _ = build_messages(MC, style="paper", sample_index=2)
    mc_text = mc_messages[0]["content"]
    assert "Answer: $LETTER" in mc_text and "A, B, C, D" in mc_text
    assert mc_gold in "ABCD"
    gsm_text = build_messages(GSM, style="paper")[0][0]["content"]
    assert "The answer is" in gsm_text and "How many pens?" in gsm_text
    assert build_messages(CHAT, style="paper")[0][0]["content"] == "Tell me a joke."


def test_plain_style():
    assert build_messages(CHAT, style="plain")[0] == [
        {"role": "user", "content": "Tell me a joke."}
    ]
    assert build_messages(MATH, style="plain")[0][0]["content"] == "What is 2 + 3?"
    mc_text = build_messages(MC, style="plain")[0][0]["content"]
    assert mc_text.startswith("Which colour is the sky?\n\nA) ")


def test_unknown_style():
    with pytest.raises(UsageError, match="prompt style"):
        build_messages(MATH, style="fancy")


def test_format_template(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("Q: {question}\nOptions:\n{choices}\nReply with a letter.\n")
    messages, gold, meta = build_messages(MC, template=str(path), sample_index=1)
    content = messages[0]["content"]
    assert content.startswith("Q: Which colour is the sky?\nOptions:\nA) ")
    assert content.endswith("Reply with a letter.")
    assert meta["prompt_style"] == "template" and meta["template"] == str(path)
    assert gold in "ABCD" and "permutation" in meta


def test_jinja_template(tmp_path):
    path = tmp_path / "t.jinja"
    path.write_text("{{ question }}{% if choices %}\n{{ choices }}{% endif %} [{{ dataset }}]")
    assert build_messages(MATH, template=str(path))[0][0]["content"] == "What is 2 + 3? [toy]"


def test_template_errors_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="template"):
        build_messages(MATH, template=str(tmp_path / "missing.txt"))
    bad = tmp_path / "bad.txt"
    bad.write_text("{questoin}")
    with pytest.raises(UsageError, match="questoin"):
        build_messages(MATH, template=str(bad))
    bad_jinja = tmp_path / "bad.j2"
    bad_jinja.write_text("{{ nothing_here }}")
    with pytest.raises(UsageError, match="nothing_here"):
        build_messages(MATH, template=str(bad_jinja))
