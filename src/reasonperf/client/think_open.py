"""Does the rendered prompt end inside an opened ``<think>``? (``--think-open``)

R1 distills and QwQ pre-open ``<think>`` in their chat template, so the model generates
only ``</think>``; a request cut by max_tokens before it has no tag at all and would look
like an answer. The per-run evidence decided here: the chat template of a model we serve
ourselves (rendered with the run's first prompt), or, on the completions API, the prompt
text itself. Per request, a ``</think>`` with no ``<think>`` before it is evidence too
(see :func:`reasonperf.client.split.classify`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Protocol

from reasonperf.client.openai import messages_to_prompt
from reasonperf.client.split import OPEN_TAG
from reasonperf.records import RequestPlan

PROMPTS_LOOKED_AT = 100  # completions: the first prompts decide (a run's prompts share a form)

SETTINGS = ("auto", "yes", "no")


class ChatTemplate(Protocol):
    @property
    def source(self) -> str: ...

    def render_generation_prompt(self, messages: list[dict[str, str]]) -> str | None: ...


def ends_in_open_think(text: str) -> bool:
    """True when text ends in <think>, possibly followed by whitespace."""
    return text.rstrip().endswith(OPEN_TAG)


def resolve_prompt_opens_think(
    setting: str, api: str, plans: Iterable[RequestPlan], template: ChatTemplate | None
) -> tuple[bool, str]:
    """(the prompt pre-opens <think>, the evidence in words) for one run."""
    if setting == "yes":
        return True, "--think-open yes"
    if setting == "no":
        return False, "--think-open no"
    # plans may be lazy (any size): look at the first few only
    sample = list(itertools.islice(iter(plans), PROMPTS_LOOKED_AT))
    if not sample:
        return False, "no requests"
    if api == "completions":  # the prompt is sent as is: no chat template applies
        opens = all(ends_in_open_think(messages_to_prompt(p.messages)) for p in sample)
        return opens, f"completions prompts {'end' if opens else 'do not all end'} in {OPEN_TAG}"
    rendered = template.render_generation_prompt(sample[0].messages) if template else None
    if template is None or rendered is None:
        return False, ("chat template unknown (not an engine we launched, no --tokenizer): "
                       f"only a {OPEN_TAG.replace('<', '</')} without {OPEN_TAG} counts")
    opens = ends_in_open_think(rendered)
    return opens, (f"chat template of {template.source} {'ends' if opens else 'does not end'} "
                   f"in {OPEN_TAG}")
