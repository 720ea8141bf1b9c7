"""--think-open and --tokenizer (issue 9, items 1 and 2): resolution from evidence, the
tokenizer fallback, and what a run records. Fake server; the real engine is in
tests/test_real_engine_split.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from reasonperf.client.think_open import ends_in_open_think, resolve_prompt_opens_think
from reasonperf.client.tokenizer import load_tokenizer
from reasonperf.config import load_run_spec
from reasonperf.errors import UsageError
from reasonperf.records import RequestPlan
from reasonperf.run import execute_run
from tests.conftest import run_cli
from tests.fake_server import FakeServer, Programme


def _plan(content: str) -> RequestPlan:
    return RequestPlan(request_id="r", index=0, dataset="d", problem_id="p", sample_index=0,
                       messages=[{"role": "user", "content": content}])


class _Template:
    """A stand-in tokenizer whose chat template appends a fixed generation prompt."""

    source = "fake-dir"

    def __init__(self, generation_prompt: str | None) -> None:
        self.generation_prompt = generation_prompt

    def render_generation_prompt(self, messages: list[dict[str, str]]) -> str | None:
        if self.generation_prompt is None:
            return None
        return messages[-1]["content"] + self.generation_prompt


def test_ends_in_open_think() -> None:
    assert ends_in_open_think("<|im_start|>assistant\n<think>\n")
    assert ends_in_open_think("x<think>")
    assert not ends_in_open_think("<think>x</think>")
    assert not ends_in_open_think("<|im_start|>assistant\n")


@pytest.mark.parametrize(
    ("setting", "api", "content", "template", "expected"),
    [
        ("yes", "chat", "q", None, True),
        ("no", "chat", "q", _Template("<think>\n"), False),
        ("auto", "chat", "q", _Template("<|assistant|><think>\n"), True),
        ("auto", "chat", "q", _Template("<|assistant|>"), False),
        ("auto", "chat", "q", None, False),  # external engine: only a bare </think> tells
        ("auto", "chat", "q<think>", None, False),  # a user message is not the template
        ("auto", "completions", "Solve it.\n<think>\n", None, True),
        ("auto", "completions", "Solve it.", _Template("<think>"), False),  # no chat template
    ],
)
def test_resolution(setting: str, api: str, content: str, template: Any,
                    expected: bool) -> None:
    opens, evidence = resolve_prompt_opens_think(setting, api, [_plan(content)], template)
    assert opens is expected and evidence


def test_a_tokenizer_that_cannot_load_is_one_line_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--tokenizer") as err:
        load_tokenizer(str(tmp_path / "nope"))
    assert "\n" not in str(err.value)


def test_cli_rejects_a_bad_tokenizer_and_think_open_with_exit_2(tmp_path: Path) -> None:
    with FakeServer() as srv:
        for flags, field in ((["--tokenizer", str(tmp_path / "nope")], "--tokenizer"),
                             (["--think-open", "maybe"], "think_open")):
            proc = run_cli("run", "--endpoint", srv.base_url, "--model", "fake-model",
                           "--limit", "1", "--out", str(tmp_path), *flags)
            err = proc.stderr.strip()
            assert proc.returncode == 2, err
            assert len(err.splitlines()) == 1 and "Traceback" not in err and field in err
        assert srv.requests_received == 0  # refused before any load


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from reasonperf.engines.models import build_test_models

    return build_test_models(tmp_path_factory.mktemp("models"))


def test_chat_templates_of_the_test_models(models: dict[str, Path]) -> None:
    msgs = [{"role": "user", "content": "What is 6 times 7?"}]
    open_tok = load_tokenizer(str(models["tiny-reasoner-open"]))
    assert ends_in_open_think(open_tok.render_generation_prompt(msgs) or "")
    plain = load_tokenizer(str(models["tiny-reasoner"]))
    assert not ends_in_open_think(plain.render_generation_prompt(msgs) or "x")
    assert plain.count("The answer is 42.") == 5  # "The", " answer", " is", " 42", "."


def _spec(tmp_path: Path, url: str, **over: Any):
    data = {"name": "think", "out": str(tmp_path),
            "engine": {"kind": "external", "url": url, "model": "fake-model"},
            "workload": {"name": "procedural", "limit": 3},
            "arrival": {"name": "batch", "batch_size": 3}, "grade": False, **over}
    return load_run_spec(data)


def test_run_without_usage_counts_with_the_given_tokenizer(tmp_path: Path,
                                                            models: dict[str, Path]) -> None:
    tok_dir = str(models["tiny-reasoner"])
    with FakeServer(Programme(usage=False, variant="think_tags")) as srv:
        res = execute_run(_spec(tmp_path, srv.base_url, tokenizer=tok_dir))
    rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    tok = load_tokenizer(tok_dir)
    for r in rows:
        assert r["token_count_source"] == "tokenizer" and r["usage_completion_tokens"] is None
        assert r["reasoning_tokens"] == tok.count(r["reasoning_text"])
        assert r["answer_tokens"] == tok.count(r["answer_text"])
    info = json.loads((res.run_dir / "run.json").read_text())
    assert info["tokenizer"] == {"source": tok_dir, "origin": "--tokenizer"}
    assert info["spec"]["tokenizer"] == tok_dir


def test_run_with_think_open_yes_flags_thinking_cut_off(tmp_path: Path) -> None:
    with FakeServer(Programme(variant="think_open_only")) as srv:
        res = execute_run(_spec(tmp_path, srv.base_url, think_open="yes",
                                sampling={"max_tokens": 12}))
    rows = pq.read_table(res.run_dir / "requests.parquet").to_pylist()
    assert len(rows) == 3
    for r in rows:
        assert r["thinking_truncated"] is True and r["think_open"] is True
        assert r["first_visible_s"] is None and r["answer_text"] == ""
        assert (r["reasoning_tokens"], r["answer_tokens"]) == (12, 0)
    assert res.summary["latency"]["ttfvt"]["count"] == 0
    info = json.loads((res.run_dir / "run.json").read_text())
    assert info["think_open"]["prompt_opens_think"] is True
    assert info["think_open"]["setting"] == "yes"
    assert info["tokenizer"] == {"source": None, "origin": None}


def test_engine_model_dir_without_a_tokenizer_is_a_note_not_an_error(tmp_path: Path) -> None:
    from reasonperf.client.tokenizer import start_run_tokenizer

    tok, entry = start_run_tokenizer(None, str(tmp_path))()  # loads in a background thread
    assert tok is None and entry["source"] is None and "tokenizer" in entry["note"]
    assert start_run_tokenizer(None, None)() == (None, {"source": None, "origin": None})
