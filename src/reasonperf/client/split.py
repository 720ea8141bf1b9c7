"""Reasoning/answer split of one finished stream, and its token counts.

Servers mark reasoning in one of four ways: a separate delta field (``reasoning`` in vLLM,
``reasoning_content`` in DeepSeek/SGLang, ``reasoning_details`` in OpenRouter) or
``<think>...</think>`` inside the content. Some chat templates pre-open ``<think>`` so only
``</think>`` is ever generated: everything before it was reasoning, which can only be known
once ``</think>`` arrives. So the client records raw :class:`Piece` s (arrival time taken
when the bytes arrived) and classifies them here, at the end, with pure functions; the
late classification changes no timing.

Whether content starts inside ``<think>`` is decided per request from evidence: the caller
knows the rendered prompt ends in ``<think>`` (``assume_open_think``), or the content has a
``</think>`` with no ``<think>`` before it. A request cut by max_tokens before any answer
text ended inside its thinking: it has no first visible token (``thinking_truncated``).

Per-chunk token counts are used only when every piece carries its own: a server that puts
the usage on its last content chunk alone would otherwise hand one chunk the whole count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reasonperf.records import ChunkEvent

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
REASONING = "reasoning"
ANSWER = "answer"


@dataclass(slots=True)
class Piece:
    """One delta field of one stream chunk, as received.

    ``field`` is "reasoning" (any reasoning field) or "content" (content / completions
    text, possibly with think tags). ``text`` may be empty for a chunk that carries only
    tokens (per-chunk usage) and no text. ``n_tokens`` is the chunk's token count when the
    server reports cumulative per-chunk usage, else None.
    """

    t_s: float
    field: str
    text: str
    n_tokens: int | None = None


@dataclass(slots=True)
class Split:
    events: list[ChunkEvent]
    reasoning_text: str
    answer_text: str
    first_token_s: float | None  # first piece with any generated text (tags included)
    first_visible_s: float | None  # first answer text
    reasoning_end_s: float | None  # last reasoning text
    has_chunk_tokens: bool  # every piece carried its own count (continuous usage)
    chunk_tokens_sum: int | None  # sum of the per-chunk counts; None unless has_chunk_tokens
    think_open: bool | None  # content read as starting inside <think>; None: reasoning field


@dataclass(slots=True)
class TokenSplit:
    completion_tokens: int | None
    reasoning_tokens: int | None
    answer_tokens: int | None
    source: str | None


def classify(
    pieces: Sequence[Piece], request_id: str, assume_open_think: bool = False
) -> Split:
    """Classify raw pieces into reasoning/answer chunk events and texts.

    A piece straddling a think tag becomes one event per side, with the same time; its
    token count is shared by characters. A piece with tokens but no text left (a bare
    ``</think>``, or a usage-only chunk) becomes a zero-character event so that per-chunk
    token sums stay complete; zero-character events never set the timing fields.
    Tag parsing applies only when no reasoning field was used. ``assume_open_think``
    treats tagless content as reasoning (a pre-opened ``<think>`` cut before its close).
    When some piece lacks a count, no event gets one (the counts are not per chunk).
    """
    use_tags = not any(p.field == REASONING and p.text for p in pieces)
    regions, think_open = _tag_regions(pieces, assume_open_think) if use_tags else (None, None)

    events: list[ChunkEvent] = []
    blanks: list[int] = []  # indexes of zero-char events whose kind is inherited
    reasoning_parts: list[str] = []
    answer_parts: list[str] = []
    first_token = first_visible = reasoning_end = None
    has_chunk_tokens = bool(pieces) and all(p.n_tokens is not None for p in pieces)
    chunk_sum = sum(p.n_tokens or 0 for p in pieces) if has_chunk_tokens else None
    offset = 0  # position of the piece in the concatenated content

    for p in pieces:
        n_tokens = p.n_tokens if has_chunk_tokens else None
        if p.text and first_token is None:
            first_token = p.t_s
        if p.field == REASONING or regions is None:
            kind = REASONING if p.field == REASONING else ANSWER
            parts = [(kind, p.text)] if p.text else []
            tag_kind = None
        else:
            parts, tag_kind = _cut(p.text, offset, regions)
            offset += len(p.text)
        if not parts:
            if n_tokens:
                if tag_kind is None:
                    blanks.append(len(events))
                events.append(ChunkEvent(request_id, p.t_s, tag_kind or ANSWER, n_tokens, 0))
            continue
        shares = _apportion(n_tokens, [len(text) for _, text in parts])
        for (kind, text), n in zip(parts, shares, strict=True):
            events.append(ChunkEvent(request_id, p.t_s, kind, n, len(text)))
            if kind == REASONING:
                reasoning_parts.append(text)
                reasoning_end = p.t_s
            else:
                answer_parts.append(text)
                if first_visible is None:
                    first_visible = p.t_s

    _inherit_kinds(events, blanks)
    return Split(
        events=events,
        reasoning_text="".join(reasoning_parts),
        answer_text="".join(answer_parts),
        first_token_s=first_token,
        first_visible_s=first_visible,
        reasoning_end_s=reasoning_end,
        has_chunk_tokens=has_chunk_tokens,
        chunk_tokens_sum=chunk_sum,
        think_open=think_open,
    )


def thinking_truncated(split: Split, finish_reason: str | None) -> bool:
    """Cut by max_tokens while still thinking: reasoning but not one answer character."""
    has_reasoning = bool(split.reasoning_text) or any(e.kind == REASONING for e in split.events)
    return finish_reason == "length" and has_reasoning and not split.answer_text


def split_tokens(
    split: Split,
    completion_tokens: int | None,
    usage_reasoning_tokens: int | None = None,
    tokenizer: Callable[[str], int] | None = None,
) -> TokenSplit:
    """Split completion tokens into reasoning/answer, best source first.

    continuous_usage (per-chunk counts, summed by kind, when their sum equals the final
    usage) > usage_details (the server's reasoning_tokens) > usage (no reasoning text at
    all: the split is exact) > tokenizer (count the reasoning text) > chars (apportion by
    characters). A usage_details value of 0 next to non-empty reasoning text is ignored as
    unreliable. SSE chunks are never counted as tokens. A per-chunk sum that disagrees with
    the final usage is not hidden: the record keeps both (``chunk_tokens_sum``,
    ``usage_completion_tokens``) and the token check reports it.
    """
    has_reasoning = bool(split.reasoning_text)
    if split.has_chunk_tokens and split.events:
        r = sum(e.n_tokens or 0 for e in split.events if e.kind == REASONING)
        a = sum(e.n_tokens or 0 for e in split.events if e.kind == ANSWER)
        if completion_tokens is None or r + a == completion_tokens:
            return TokenSplit(r + a, r, a, "continuous_usage")
    if completion_tokens is None:
        if tokenizer is None:
            return TokenSplit(None, None, None, None)
        r = tokenizer(split.reasoning_text) if has_reasoning else 0
        a = tokenizer(split.answer_text) if split.answer_text else 0
        return TokenSplit(r + a, r, a, "tokenizer")
    if (
        usage_reasoning_tokens is not None
        and 0 <= usage_reasoning_tokens <= completion_tokens
        and not (usage_reasoning_tokens == 0 and has_reasoning)
    ):
        r = usage_reasoning_tokens
        return TokenSplit(completion_tokens, r, completion_tokens - r, "usage_details")
    if not has_reasoning:
        return TokenSplit(completion_tokens, 0, completion_tokens, "usage")
    if tokenizer is not None:
        r = min(tokenizer(split.reasoning_text), completion_tokens)
        return TokenSplit(completion_tokens, r, completion_tokens - r, "tokenizer")
    rc, ac = len(split.reasoning_text), len(split.answer_text)
    r = round(completion_tokens * rc / (rc + ac))
    return TokenSplit(completion_tokens, r, completion_tokens - r, "chars")


# --- helpers -------------------------------------------------------------------------

# (start, end, kind) over the concatenated content; kind None marks a tag (dropped text).
_Region = tuple[int, int, str | None]


def _tag_regions(
    pieces: Sequence[Piece], assume_open_think: bool
) -> tuple[list[_Region], bool]:
    """Regions of the content, and whether it starts inside a (pre-opened) <think>."""
    content = "".join(p.text for p in pieces if p.field != REASONING)
    n = len(content)
    close = content.find(CLOSE_TAG)
    search_end = close if close >= 0 else n
    open_ = content.find(OPEN_TAG, 0, search_end)
    if open_ < 0 and close < 0 and not assume_open_think:
        return [(0, n, ANSWER)], False
    regions: list[_Region] = []
    if open_ >= 0:
        # Text before <think> is template noise unless it has something visible.
        before = ANSWER if content[:open_].strip() else None
        regions.append((0, open_, before))
        regions.append((open_, open_ + len(OPEN_TAG), None))
        r_start = open_ + len(OPEN_TAG)
    else:  # pre-opened <think>: everything before </think> was reasoning
        r_start = 0
    if close >= 0:
        regions.append((r_start, close, REASONING))
        regions.append((close, close + len(CLOSE_TAG), None))
        regions.append((close + len(CLOSE_TAG), n, ANSWER))
    else:
        regions.append((r_start, n, REASONING))
    return [r for r in regions if r[1] > r[0]], open_ < 0


def _cut(text: str, offset: int, regions: list[_Region]) -> tuple[list[tuple[str, str]], str | None]:
    """Parts (kind, text) of one content piece, same-kind neighbours merged, plus the kind a
    tag-only piece belongs to (a think tag is part of the reasoning)."""
    end = offset + len(text)
    parts: list[tuple[str, str]] = []
    touched_tag = False
    for r_start, r_end, kind in regions:
        lo, hi = max(r_start, offset), min(r_end, end)
        if lo >= hi:
            continue
        if kind is None:
            touched_tag = True
            continue
        seg = text[lo - offset : hi - offset]
        if parts and parts[-1][0] == kind:
            parts[-1] = (kind, parts[-1][1] + seg)
        else:
            parts.append((kind, seg))
    return parts, (REASONING if touched_tag else None)


def _apportion(total: int | None, weights: list[int]) -> list[int | None]:
    """Share an integer total by weights (largest remainder); None stays None."""
    if total is None:
        return [None] * len(weights)
    if len(weights) == 1:
        return [total]
    s = sum(weights)
    raw = [total * w / s for w in weights]
    shares = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - shares[i], reverse=True)
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    return list(shares)  # a copy typed list[int | None] (list is invariant)


def _inherit_kinds(events: list[ChunkEvent], blanks: list[int]) -> None:
    """A text-less token chunk belongs to the phase it arrived in: the previous event's
    kind, else (at the start) the first known kind."""
    if not blanks:
        return
    blank = set(blanks)
    head: list[int] = []
    last: str | None = None
    for i, event in enumerate(events):
        if i not in blank:
            if last is None:
                for j in head:
                    events[j].kind = event.kind
            last = event.kind
        elif last is None:
            head.append(i)
        else:
            event.kind = last
    if last is None:
        for j in head:
            events[j].kind = ANSWER
