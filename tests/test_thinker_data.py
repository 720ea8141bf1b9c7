"""tiny-thinker / tiny-instruct: traces, tokenizer, training loop and shipped weights (fast)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from statistics import mean

import numpy as np
import pytest

from reasonperf.engines.thinker import MODEL_NAMES, traces
from reasonperf.engines.thinker.tokenizer import (
    EOS,
    THINK_CLOSE,
    THINK_OPEN,
    generation_prompt,
)
from reasonperf.workload.procedural import LEVEL_SPECS, make_problem
from reasonperf.workload.prompts import build_messages


@pytest.fixture(scope="module")
def tok():
    pytest.importorskip("tokenizers")
    from reasonperf.engines.thinker.train import fitted_tokenizer

    return fitted_tokenizer()


# --------------------------------------------------------------------------- traces


@pytest.mark.parametrize("level", [1, 3, 5])
def test_step_lines_replay_every_operation_to_the_gold(level: int) -> None:
    for index in range(30):
        problem = make_problem(index, level, seed=3)
        lines = traces.step_lines(problem)
        assert len(lines) == LEVEL_SPECS[level].steps + 1
        assert lines[0] == f"start {problem.meta['start']}"
        assert lines[-1].rsplit(" = ", 1)[1] == problem.gold
        for prev, line in zip(lines[1:], lines[2:], strict=False):  # each step starts from the last result
            assert line.split(" ")[0] == prev.rsplit(" = ", 1)[1]


def test_thinker_completion_closes_thinking_then_boxes_the_gold() -> None:
    problem = make_problem(4, 3, seed=0)
    text = traces.thinker_completion(problem, passes=2)
    reasoning, _, answer = text.partition(f"\n{THINK_CLOSE}\n")
    assert THINK_OPEN not in text  # the chat template opens the block
    assert text.count(THINK_CLOSE) == 1
    assert answer == f"The answer is \\boxed{{{problem.gold}}}."
    assert reasoning.count(traces.RECHECK_LINE) == 1
    assert len(reasoning.splitlines()) == 2 * (LEVEL_SPECS[3].steps + 1) + 1


def test_rechecks_grow_with_level_and_have_a_tail() -> None:
    rng = np.random.default_rng(0)
    passes = {lvl: [traces.n_passes(lvl, rng) for _ in range(4000)] for lvl in range(1, 6)}
    means = [mean(passes[lvl]) for lvl in range(1, 6)]
    assert means == sorted(means) and means[0] < 1.1 and means[4] > 1.7
    for lvl in (3, 4, 5):  # at least 10 % re-check: p90 is a second pass
        assert np.percentile(passes[lvl], 90) >= 2
    assert max(max(p) for p in passes.values()) == traces.MAX_PASSES


def test_examples_are_a_pure_function_of_their_index() -> None:
    a = traces.example("thinker", 17, 4, seed=9)
    b = traces.example("thinker", 17, 4, seed=9)
    assert a == b
    assert traces.example("thinker", 18, 4, seed=9).problem != a.problem
    assert [traces.level_for(i, 9, (1, 0, 0, 0, 1)) for i in range(50)].count(1) > 10
    assert set(traces.level_for(i, 9, (1, 0, 0, 0, 1)) for i in range(50)) == {1, 5}


def test_the_prompt_is_exactly_what_a_run_sends() -> None:
    problem = make_problem(2, 2, seed=0)
    messages, _, _ = build_messages(problem, style="r1")
    assert traces.example("thinker", 2, 2, seed=0).user == messages[0]["content"]
    assert traces.example("instruct", 2, 2, seed=0).completion == traces.answer_line(problem)


# --------------------------------------------------------------------------- tokenizer


def test_tokenizer_round_trips_and_spells_digits(tok) -> None:
    ex = traces.example("thinker", 5, 5, seed=1)
    text = generation_prompt(ex.user, thinker=True) + ex.completion + EOS
    enc = tok.encode(text)
    assert tok.decode(enc.ids, skip_special_tokens=False) == text
    assert tok.token_to_id("<unk>") not in enc.ids
    assert all(len(t) == 1 for t in tok.encode("1234567890").tokens)
    for marker in (THINK_OPEN, THINK_CLOSE):
        assert tok.encode(marker).ids == [tok.token_to_id(marker)]
    # prompt tokens + completion tokens == tokens of the whole text (what training relies on)
    prompt = generation_prompt(ex.user, thinker=True)
    assert tok.encode(prompt).ids + tok.encode(ex.completion).ids == tok.encode(prompt + ex.completion).ids
    assert tok.get_vocab_size() <= 512


def test_instruct_answers_fit_in_16_tokens(tok) -> None:
    for level in range(1, 6):
        for index in range(20):
            ex = traces.example("instruct", index, level, seed=2)
            assert len(tok.encode(ex.completion + EOS).ids) <= 16


# --------------------------------------------------------------------------- training


def _tiny_cfg(steps: int):
    from reasonperf.engines.thinker.train import TrainConfig

    return TrainConfig(kind="thinker", seed=5, steps=steps, batch_size=2, hidden_size=32,
                       intermediate_size=64, num_hidden_layers=1, num_attention_heads=1,
                       num_key_value_heads=1, checkpoint_every=1, threads=1, warmup=1)


def test_training_is_deterministic_resumable_and_exports(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from reasonperf.engines.thinker.shipped import verify
    from reasonperf.engines.thinker.train import train

    train(_tiny_cfg(3), tmp_path / "w1", tmp_path / "out1", progress=False)
    # stop after 2 steps (checkpointed), then resume to 3
    train(_tiny_cfg(2), tmp_path / "w2", tmp_path / "tmp2", progress=False)
    train(_tiny_cfg(3), tmp_path / "w2", tmp_path / "out2", progress=False)
    loss1 = (tmp_path / "out1" / "loss.csv").read_text().splitlines()
    loss2 = (tmp_path / "out2" / "loss.csv").read_text().splitlines()
    assert len(loss1) == 4
    assert [r.split(",")[:2] for r in loss1] == [r.split(",")[:2] for r in loss2]
    out = tmp_path / "out1"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json", "loss.png", "SHA256SUMS"):
        assert (out / name).is_file(), name
    assert (out / "model.safetensors").read_bytes() == (tmp_path / "out2" / "model.safetensors").read_bytes()
    assert json.loads((out / "config.json").read_text())["dtype"] == "float16"
    assert verify(out) == []


# --------------------------------------------------------------------------- shipped weights


def test_shipped_weights_verify_and_a_changed_byte_is_caught(tmp_path: Path) -> None:
    from reasonperf.engines.models import shipped_models
    from reasonperf.engines.thinker.shipped import WEIGHTS_DIR, verify

    paths = shipped_models()
    assert set(paths) == set(MODEL_NAMES)
    total = sum(f.stat().st_size for p in paths.values() for f in p.iterdir())
    assert total < 20 * 2**20
    copy = tmp_path / "copy"
    shutil.copytree(WEIGHTS_DIR / "tiny-thinker", copy)
    assert verify(copy) == []
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert verify(copy) == ["model.safetensors"]


def test_shipped_chat_templates_match_training_prompts() -> None:
    transformers = pytest.importorskip("transformers")
    from reasonperf.engines.models import shipped_models

    ex = traces.example("thinker", 1, 3, seed=0)
    msgs = [{"role": "user", "content": ex.user}]
    for name, path in shipped_models().items():
        tk = transformers.AutoTokenizer.from_pretrained(path)
        text = tk.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        assert text == generation_prompt(ex.user, thinker=name == "tiny-thinker")
        assert text.endswith(f"{THINK_OPEN}\n") == (name == "tiny-thinker")


def test_builtin_names_resolve_to_the_shipped_weights() -> None:
    from reasonperf.engines.thinker.shipped import WEIGHTS_DIR
    from reasonperf.study.expand import resolve_model

    for name in MODEL_NAMES:
        assert resolve_model(f"builtin:{name}") == str(WEIGHTS_DIR / name)
