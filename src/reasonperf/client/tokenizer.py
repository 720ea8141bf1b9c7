"""A local tokenizer for the run: token counts when the server sends no usage, and the
chat template that tells whether the prompt pre-opens ``<think>``.

transformers is imported only when a tokenizer is asked for. Loading never touches the
network (``local_files_only``): a local model directory, or a name already in the
Hugging Face cache.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasonperf.errors import UsageError


@dataclass(frozen=True)
class Tokenizer:
    source: str  # the path or name it was loaded from
    impl: Any  # a transformers PreTrainedTokenizer(Fast)

    def count(self, text: str) -> int:
        """Tokens of text as the model would see it, without special tokens."""
        return len(self.impl.encode(text, add_special_tokens=False))

    def render_generation_prompt(self, messages: list[dict[str, str]]) -> str | None:
        """The chat template applied to messages plus the generation prompt; None when the
        tokenizer has no chat template."""
        if not getattr(self.impl, "chat_template", None):
            return None
        try:
            text = self.impl.apply_chat_template(messages, add_generation_prompt=True,
                                                 tokenize=False)
        except Exception:  # noqa: BLE001 - any template error means "cannot tell"
            return None
        return text if isinstance(text, str) else None


def load_tokenizer(name_or_path: str) -> Tokenizer:
    """Load with transformers' AutoTokenizer; a one-line UsageError when it cannot."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise UsageError(
            "--tokenizer needs the package transformers (pip install transformers); "
            "or leave --tokenizer out"
        ) from None
    try:
        impl = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError, ... all mean "cannot load"
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise UsageError(
            f"--tokenizer {name_or_path!r}: cannot load a tokenizer ({reason}); "
            "give a local model directory with tokenizer files"
        ) from None
    return Tokenizer(name_or_path, impl)


def run_tokenizer(
    explicit: str | None, engine_model_dir: str | None
) -> tuple[Tokenizer | None, dict[str, Any]]:
    """The run's tokenizer and its run.json entry.

    ``explicit`` (--tokenizer) must load (UsageError otherwise). Else the model directory
    of an engine we launched, when it is local; its failure to load is a note, not an
    error (the run still has the server's usage counts).
    """
    if explicit:
        return load_tokenizer(explicit), {"source": explicit, "origin": "--tokenizer"}
    if engine_model_dir and Path(engine_model_dir).is_dir():
        try:
            tok = load_tokenizer(engine_model_dir)
        except UsageError as err:
            return None, {"source": None, "origin": None,
                          "note": f"the launched engine's model: {err}"}
        return tok, {"source": engine_model_dir, "origin": "launched engine's model"}
    return None, {"source": None, "origin": None}


RunTokenizer = tuple[Tokenizer | None, dict[str, Any]]


def start_run_tokenizer(explicit: str | None, engine_model_dir: str | None
                        ) -> Callable[[], RunTokenizer]:
    """:func:`run_tokenizer`, started now; call the result for it.

    ``explicit`` loads right away, so a bad --tokenizer fails before an engine starts. The
    launched engine's tokenizer loads in a background thread while the engine starts
    (importing transformers takes seconds on a busy 2-core machine).
    """
    if explicit or not engine_model_dir:
        result = run_tokenizer(explicit, engine_model_dir)
        return lambda: result
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenizer")
    future = pool.submit(run_tokenizer, None, engine_model_dir)
    pool.shutdown(wait=False)
    return future.result
