"""Turn a Problem into chat messages, and the gold that goes with THIS request.

Styles:
- "r1": the DeepSeek-R1 / Qwen recipe. No system prompt; the question followed by
  "Please reason step by step, and put your final answer within \\boxed{}." Multiple
  choice lists the options as "A) ..." and asks for the letter in \\boxed{}.
- "paper": the templates of the ICLR 2026 study, chosen by the problem's grader: MATH
  with a last line "Answer: $ANSWER", AIME with a boxed integer, GPQA with a last line
  "Answer: $LETTER", GSM8K zero-shot.
- "plain": the question only (chat workloads); multiple choice still lists its options.
- a user template file (``template=path``): jinja2 when the file name ends in .j2/.jinja/
  .jinja2 or the text contains "{{", else ``str.format``; fields {question} and {choices}
  (plus {letters}, {problem_id}, {dataset}).

Multiple-choice options are shuffled with a permutation seeded by (problem_id,
sample_index, seed), so every sample of a problem sees its own order and a rerun sees
the same one. ``meta["permutation"][i]`` is the original index of the option shown at
position i; the returned gold is the letter the correct option landed on.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reasonperf.errors import UsageError
from reasonperf.records import Problem
from reasonperf.registry import Registry

LETTERS = "ABCDEFGHIJ"

R1_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
R1_CHOICE_SUFFIX = (
    "Please reason step by step, and put the letter of your final answer "
    "(one of {letters}) within \\boxed{{}}."
)
PAPER_MATH = (
    "Solve the following math problem step by step. The last line of your response "
    "should be of the form Answer: $ANSWER (without quotes) where $ANSWER is the answer "
    "to the problem.\n\n{question}\n\nRemember to put your answer on its own line after "
    '"Answer:", and you do not need to use a \\boxed command.'
)
PAPER_AIME = (
    "{question}\nPlease reason step by step, and put your final answer within \\boxed{{}}. "
    "The answer is an integer between 0 and 999 inclusive."
)
PAPER_CHOICE = (
    "Answer the following multiple choice question. The last line of your response "
    "should be of the following format: 'Answer: $LETTER' (without quotes) where LETTER "
    "is one of {letters}. Think step by step before answering.\n\n{question}\n\n{choices}"
)
PAPER_GSM8K = (
    "Solve the following grade-school math problem. Think step by step, then give the "
    'final answer as a number on the last line in the form "The answer is N".\n\n'
    "Question: {question}"
)

Fields = dict[str, Any]
StyleFn = Callable[[Problem, Fields], str]
STYLES: Registry[StyleFn] = Registry("prompt style")


# --------------------------------------------------------------------------- choices


def permutation(problem_id: str, sample_index: int, seed: int, n: int) -> list[int]:
    """A permutation of range(n) fixed by (problem_id, sample_index, seed).

    Seeded from a SHA-256 digest, so it is the same across processes and Python runs
    (unlike ``hash()``, which is salted per process).
    """
    digest = hashlib.sha256(f"{problem_id}\x1f{sample_index}\x1f{seed}".encode()).digest()
    order = list(range(n))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return order


def _gold_index(problem: Problem) -> int | None:
    choices = problem.choices or []
    gold = problem.gold
    if gold is None:
        return None
    if gold in choices:
        return choices.index(gold)
    letter = gold.strip().strip("()").upper()
    if len(letter) == 1 and letter in LETTERS[: len(choices)]:
        return LETTERS.index(letter)
    raise UsageError(
        f"problem {problem.problem_id!r}: gold {gold!r} is neither one of its choices nor "
        f"a letter {LETTERS[0]}-{LETTERS[len(choices) - 1]}; fix the dataset's gold field"
    )


def _shuffle(
    problem: Problem, sample_index: int, seed: int
) -> tuple[list[str], str | None, Fields]:
    """Shown options, the gold letter after shuffling, and meta with the permutation."""
    choices = list(problem.choices or [])
    if not 2 <= len(choices) <= len(LETTERS):
        raise UsageError(
            f"problem {problem.problem_id!r}: choices has {len(choices)} options; "
            f"a multiple-choice problem needs 2 to {len(LETTERS)}"
        )
    if problem.meta.get("shuffle_choices", True):
        perm = permutation(problem.problem_id, sample_index, seed, len(choices))
    else:
        perm = list(range(len(choices)))
    gold_index = _gold_index(problem)
    gold = None if gold_index is None else LETTERS[perm.index(gold_index)]
    return [choices[i] for i in perm], gold, {"permutation": perm}


def format_choices(options: list[str]) -> str:
    return "\n".join(f"{LETTERS[i]}) {text}" for i, text in enumerate(options))


# --------------------------------------------------------------------------- styles


@STYLES.register("r1")
def _r1(problem: Problem, f: Fields) -> str:
    if f["choices"]:
        suffix = R1_CHOICE_SUFFIX.format(letters=f["letters"])
        return f"{problem.prompt}\n\n{f['choices']}\n{suffix}"
    return f"{problem.prompt}\n{R1_SUFFIX}"


@STYLES.register("paper")
def _paper(problem: Problem, f: Fields) -> str:
    if f["choices"]:
        return PAPER_CHOICE.format(
            question=problem.prompt, choices=f["choices"], letters=f["letters"]
        )
    template = {"math": PAPER_MATH, "aime": PAPER_AIME, "gsm8k": PAPER_GSM8K}.get(
        problem.grader or ""
    )
    return template.format(question=problem.prompt) if template else problem.prompt


@STYLES.register("plain")
def _plain(problem: Problem, f: Fields) -> str:
    return f"{problem.prompt}\n\n{f['choices']}" if f["choices"] else problem.prompt


# --------------------------------------------------------------------------- templates


def _render_template(path: str, fields: Fields) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"template {path!r} cannot be read ({exc.strerror}); give a readable file"
        ) from None
    if Path(path).suffix in {".j2", ".jinja", ".jinja2"} or "{{" in text:
        import jinja2

        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
        try:
            return env.from_string(text).render(**fields)
        except jinja2.TemplateError as exc:
            raise UsageError(
                f"template {path!r}: {exc}; use {{{{ question }}}} and {{{{ choices }}}}"
            ) from None
    try:
        return text.format(**fields).rstrip("\n")
    except KeyError as exc:
        raise UsageError(
            f"template {path!r} uses unknown field {{{exc.args[0]}}}; use {{question}} and {{choices}}"
        ) from None
    except (IndexError, ValueError) as exc:
        raise UsageError(
            f"template {path!r}: {exc}; write literal braces as {{{{ and }}}}"
        ) from None


def build_messages(
    problem: Problem,
    style: str = "r1",
    sample_index: int = 0,
    seed: int = 0,
    template: str | None = None,
) -> tuple[list[dict[str, str]], str | None, dict[str, Any]]:
    """Chat messages for one request, the gold for this request, and prompt meta.

    For multiple choice the gold is the letter after shuffling and meta carries the
    permutation. ``template`` (a file path) overrides ``style``.
    """
    meta: dict[str, Any] = {"prompt_style": "template" if template else style}
    gold = problem.gold
    options: list[str] = []
    if problem.grader == "choice" or problem.choices:
        options, gold, shuffle_meta = _shuffle(problem, sample_index, seed)
        meta.update(shuffle_meta)
    fields: Fields = {
        "question": problem.prompt,
        "choices": format_choices(options),
        "choices_list": options,
        "letters": ", ".join(LETTERS[: len(options)]),
        "problem_id": problem.problem_id,
        "dataset": problem.dataset,
    }
    if template is not None:
        content = _render_template(template, fields)
        meta["template"] = template
    else:
        content = STYLES.get(style)(problem, fields)
    return [{"role": "user", "content": content}], gold, meta
