"""Workload loading: real benchmark files, generic table files, the hub fallback, chat."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reasonperf.errors import UsageError
from reasonperf.workload import load_workload, parse_field_map
from reasonperf.workload.chat import PROMPTS
from tests.conftest import SHARED_DATASETS

DATA = SHARED_DATASETS  # ../shared/datasets beside the repository (team checkout and CI)
NEED_FILE = (
    "dataset 'gsm8k' needs a local file: pass --data-file PATH (JSONL/CSV/Parquet with "
    "question/answer columns) or pip install datasets with hub access"
)


@pytest.fixture
def data_dir() -> Path:
    if not (DATA / "gsm8k_test.jsonl").is_file():
        pytest.skip(f"real benchmark files are not available in {DATA}")
    return DATA


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import datasets`` fail, whether or not the package is installed."""
    monkeypatch.setitem(sys.modules, "datasets", None)


def fake_hub(monkeypatch: pytest.MonkeyPatch, load_dataset) -> list[tuple]:
    calls: list[tuple] = []

    def recorder(repo, config=None, split=None):
        calls.append((repo, config, split))
        return load_dataset(repo, config, split)

    module = types.ModuleType("datasets")
    module.load_dataset = recorder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "datasets", module)
    return calls


# ----------------------------------------------------------------- real files, by name


def test_gsm8k_data_file(data_dir: Path) -> None:
    problems = load_workload("gsm8k", data_file=str(data_dir / "gsm8k_test.jsonl"))
    assert len(problems) == 1319
    first = problems[0]
    assert (first.dataset, first.problem_id, first.gold) == ("gsm8k", "0", "18")
    assert (first.grader, first.domain, first.difficulty) == ("gsm8k", "math", None)
    assert "####" not in first.prompt
    # Golds are the bare final answers: no worked solution, no thousands commas.
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", p.gold or "") for p in problems)
    assert len({p.problem_id for p in problems}) == 1319


def test_math500_data_file(data_dir: Path) -> None:
    problems = load_workload("math500", data_file=str(data_dir / "math500.jsonl"))
    assert len(problems) == 500
    assert {p.difficulty for p in problems} == {"1", "2", "3", "4", "5"}
    assert sum(p.difficulty == "1" for p in problems) == 43
    assert all(p.grader == "math" and p.domain == "math" for p in problems)
    assert all(p.problem_id.startswith("test/") for p in problems)
    assert len({p.meta["subject"] for p in problems}) == 7


def test_aime24_data_file(data_dir: Path) -> None:
    problems = load_workload("aime24", data_file=str(data_dir / "aime24.jsonl"))
    assert len(problems) == 30
    assert all(p.grader == "aime" and p.difficulty == "aime" for p in problems)
    assert all(re.fullmatch(r"\d{3}", p.gold or "") for p in problems)
    assert len({p.problem_id for p in problems}) == 30


def test_limit_takes_first_n(data_dir: Path) -> None:
    full = load_workload("gsm8k", data_file=str(data_dir / "gsm8k_test.jsonl"))
    some = load_workload("gsm8k", data_file=str(data_dir / "gsm8k_test.jsonl"), limit=7)
    assert [p.problem_id for p in some] == [p.problem_id for p in full[:7]]
    with pytest.raises(UsageError, match=r"--limit must be >= 1 \(got 0\)"):
        load_workload("gsm8k", data_file=str(data_dir / "gsm8k_test.jsonl"), limit=0)


# ----------------------------------------------------------------- real files, by path


@pytest.mark.parametrize(
    ("file", "count", "grader"),
    [
        ("gsm8k_test.jsonl", 1319, "gsm8k"),
        ("math500.jsonl", 500, "math"),
        ("aime24.jsonl", 30, "aime"),
    ],
)
def test_path_mode_detects_columns_and_grader(
    data_dir: Path, file: str, count: int, grader: str
) -> None:
    problems = load_workload(str(data_dir / file))
    assert len(problems) == count
    assert {p.grader for p in problems} == {grader}
    assert problems[0].dataset == Path(file).stem
    named = {"gsm8k": "gsm8k", "math": "math500", "aime": "aime24"}[grader]
    by_name = load_workload(named, data_file=str(data_dir / file))
    assert [p.gold for p in problems] == [p.gold for p in by_name]
    assert [p.problem_id for p in problems] == [p.problem_id for p in by_name]


def test_path_mode_math500_reads_levels(data_dir: Path) -> None:
    problems = load_workload(str(data_dir / "math500.jsonl"))
    assert {p.difficulty for p in problems} == {"1", "2", "3", "4", "5"}


def test_field_map_overrides_detection(data_dir: Path) -> None:
    # aime24 has both 'question' and 'problem'; map the answer to 'id' to see the map win.
    problems = load_workload(
        str(data_dir / "aime24.jsonl"), field_map={"prompt": "problem", "answer": "id"}
    )
    assert problems[0].gold == "60"
    bad = {"prompt": "no_such_col", "answer": "answer"}
    with pytest.raises(UsageError) as err:
        load_workload(str(data_dir / "aime24.jsonl"), field_map=bad)
    assert "'no_such_col'" in str(err.value)
    assert "--field-map prompt=COL,answer=COL" in str(err.value)


# ----------------------------------------------------------------- generic tables (own text)


def test_csv_with_field_map_keeps_text_cells(tmp_path: Path) -> None:
    f = tmp_path / "mine.csv"
    f.write_text(
        "key,q,a,lvl\nk1,What is two plus two?,004,easy\nk2,What is ten minus one?,9,hard\n"
    )
    problems = load_workload(
        str(f), field_map={"prompt": "q", "answer": "a", "id": "key", "difficulty": "lvl"}
    )
    assert [(p.problem_id, p.gold, p.difficulty) for p in problems] == [
        ("k1", "004", "easy"),
        ("k2", "9", "hard"),
    ]
    assert problems[0].grader == "aime"  # all golds are integers
    assert problems[0].dataset == "mine"


def test_parquet_and_options(tmp_path: Path) -> None:
    f = tmp_path / "set.parquet"
    pq.write_table(
        pa.table(
            {"prompt": ["Add 1 and 1.", "Name a prime."], "gold": [2, 3], "domain": ["a", "b"]}
        ),
        f,
    )
    problems = load_workload(str(f), options={"grader": "math", "name": "mine"})
    assert [(p.prompt, p.gold, p.grader, p.dataset) for p in problems] == [
        ("Add 1 and 1.", "2", "math", "mine"),
        ("Name a prime.", "3", "math", "mine"),
    ]
    assert [p.domain for p in problems] == ["a", "b"]
    assert [p.problem_id for p in problems] == ["0", "1"]  # row numbers when no id column
    with pytest.raises(UsageError, match="workload option 'colour' does not apply"):
        load_workload(str(f), options={"colour": "red"})


def test_answerless_file_needs_grader_none(tmp_path: Path) -> None:
    f = tmp_path / "prompts.jsonl"
    f.write_text('{"prompt": "Say hello."}\n{"prompt": "Say bye."}\n')
    with pytest.raises(UsageError) as err:
        load_workload(str(f))
    assert "'answer'/'gold'" in str(err.value) and "--field-map" in str(err.value)
    problems = load_workload(str(f), options={"grader": "none"})
    assert [(p.gold, p.grader) for p in problems] == [(None, None), (None, None)]


def test_missing_prompt_column_names_it(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_text('{"text": "hi", "answer": "1"}\n')
    with pytest.raises(UsageError) as err:
        load_workload(str(f))
    msg = str(err.value)
    assert "'question'/'problem'/'prompt'" in msg and "columns: text, answer" in msg
    assert "--field-map prompt=COL,answer=COL" in msg
    assert "\n" not in msg


def test_bad_path_and_bad_files(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.jsonl"
    with pytest.raises(UsageError, match=re.escape(f"cannot read '{missing}': no such file")):
        load_workload(str(missing))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question": "ok", "answer": "1"}\nnot json\n')
    with pytest.raises(UsageError, match="line 2 is not valid JSON"):
        load_workload(str(broken))
    empty = tmp_path / "empty.csv"
    empty.write_text("question,answer\n")
    with pytest.raises(UsageError, match="has no rows"):
        load_workload(str(empty))


def test_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    f = tmp_path / "dup.jsonl"
    f.write_text(
        '{"id": 1, "question": "a", "answer": "1"}\n{"id": 1, "question": "b", "answer": "2"}\n'
    )
    with pytest.raises(UsageError, match="repeats id '1'"):
        load_workload(str(f))


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(UsageError) as err:
        load_workload("gsm9k")
    msg = str(err.value)
    assert msg.startswith("unknown workload 'gsm9k'; choose one of:")
    for name in ("aime24", "aime25", "chat", "gpqa_diamond", "gsm8k", "math500", "procedural"):
        assert name in msg


def test_data_file_rejected_where_it_does_not_apply(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--data-file does not apply to workload 'chat'"):
        load_workload("chat", data_file=str(tmp_path / "x.jsonl"))
    with pytest.raises(UsageError, match="--field-map key 'bogus' is not known"):
        load_workload("chat", field_map={"bogus": "x"})


# ----------------------------------------------------------------- hub fallback


def test_no_file_and_no_hub(no_hub: None) -> None:
    with pytest.raises(UsageError) as err:
        load_workload("gsm8k")
    assert str(err.value) == NEED_FILE


def test_hub_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(repo, config, split):
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub\n(more lines)")

    fake_hub(monkeypatch, offline)
    with pytest.raises(UsageError) as err:
        load_workload("gsm8k")
    msg = str(err.value)
    assert msg.startswith(NEED_FILE) and "Couldn't reach" in msg and "\n" not in msg


def test_hub_rows_gsm8k_and_gpqa(monkeypatch: pytest.MonkeyPatch) -> None:
    def load(repo, config, split):
        if repo == "openai/gsm8k":
            return [{"question": "Q one?", "answer": "work\n#### 1,234"}]
        return [
            {
                "Record ID": "rec1",
                "Question": " Which is a noble gas? ",
                "Correct Answer": "Neon",
                "Incorrect Answer 1": "Sodium",
                "Incorrect Answer 2": "Iron",
                "Incorrect Answer 3": "Carbon",
                "Subdomain": "Chemistry",
            }
        ]

    calls = fake_hub(monkeypatch, load)
    (g,) = load_workload("gsm8k")
    assert (g.problem_id, g.gold, g.grader) == ("0", "1234", "gsm8k")
    (q,) = load_workload("gpqa_diamond")
    assert (q.problem_id, q.prompt, q.gold, q.grader, q.domain) == (
        "rec1",
        "Which is a noble gas?",
        "Neon",
        "choice",
        "science",
    )
    assert q.choices == ["Neon", "Sodium", "Iron", "Carbon"]
    assert calls == [("openai/gsm8k", "main", "test"), ("Idavidrein/gpqa", "gpqa_diamond", "train")]


def test_parse_field_map() -> None:
    assert parse_field_map("prompt=q, answer=a") == {"prompt": "q", "answer": "a"}
    assert parse_field_map(None) == {}
    with pytest.raises(UsageError, match="must look like ROLE=COLUMN"):
        parse_field_map("prompt")


# ----------------------------------------------------------------- chat


def test_chat_workload() -> None:
    fixed = load_workload("chat")
    assert len(fixed) == len(PROMPTS) >= 60
    assert all(p.gold is None and p.grader is None and p.domain == "chat" for p in fixed)
    assert {p.meta["category"] for p in fixed} >= {
        "writing",
        "explanation",
        "summarisation",
        "planning",
    }
    many = load_workload("chat", options={"n": 150}, seed=5)
    assert len(many) == 150 and len({p.prompt for p in many}) == 150
    assert [p.prompt for p in many[:60]] == [p.prompt for p in fixed[:60]]
    again = load_workload("chat", options={"n": 150}, seed=5)
    other = load_workload("chat", options={"n": 150}, seed=6)
    assert [p.prompt for p in again] == [p.prompt for p in many]
    assert [p.prompt for p in other] != [p.prompt for p in many]
    assert len(load_workload("chat", limit=10)) == 10
