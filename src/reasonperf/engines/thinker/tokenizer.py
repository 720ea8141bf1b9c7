"""A BPE tokenizer fitted to the procedural task, with the chat templates of both models.

Words of the prompts become whole tokens (a level-5 prompt is ~250 tokens instead of ~700
characters); digits are always single tokens, so numbers are spelled digit by digit;
spaces are explicit (Metaspace, never prepended), so the tokens of a prompt followed by a
completion are the prompt's tokens followed by the completion's. ``<think>`` and
``</think>`` are added tokens that are not special, so they survive detokenization for
vLLM's deepseek_r1 reasoning parser.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

UNK, BOS, IM_START, EOS = "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (UNK, BOS, IM_START, EOS)
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
VOCAB_SIZE = 384

_TEMPLATE_HEAD = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
)
# The thinker's generation prompt pre-opens the thinking block, like the R1 distills.
THINKER_TEMPLATE = (
    _TEMPLATE_HEAD + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}{% endif %}"
)
INSTRUCT_TEMPLATE = (
    _TEMPLATE_HEAD + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def generation_prompt(user: str, thinker: bool) -> str:
    """The chat template rendered for one user message (what vLLM feeds the model)."""
    head = f"{IM_START}user\n{user}{EOS}\n{IM_START}assistant\n"
    return head + f"{THINK_OPEN}\n" if thinker else head


def build_tokenizer(corpus: Iterable[str]) -> Any:
    """A ``tokenizers.Tokenizer`` learnt from ``corpus`` (deterministic for a given corpus)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers as pre
    from tokenizers.trainers import BpeTrainer

    tok = Tokenizer(models.BPE(unk_token=UNK))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre.Sequence(
        [
            pre.Metaspace(replacement="▁", prepend_scheme="never", split=True),
            pre.Split(Regex(r"\n"), behavior="isolated"),
            pre.Punctuation(behavior="isolated"),
            pre.Digits(individual_digits=True),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    alphabet = sorted(set(string.printable) - set(string.whitespace) | {"▁", "\n"})
    trainer = BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t in (THINK_OPEN, THINK_CLOSE)])
    return tok


def write_tokenizer(tok: Any, out: Path, thinker: bool, max_len: int) -> None:
    """tokenizer.json, tokenizer_config.json (with the chat template), special_tokens_map."""
    from reasonperf.engines.models import write_tokenizer_files

    write_tokenizer_files(tok, out, THINKER_TEMPLATE if thinker else INSTRUCT_TEMPLATE, max_len)
