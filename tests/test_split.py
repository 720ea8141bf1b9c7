from __future__ import annotations

import pytest

from reasonperf.client.split import Piece, classify, split_tokens, thinking_truncated

# One generation: 4 reasoning tokens then 3 answer tokens, streamed 2 tokens per chunk so
# one chunk straddles the end of reasoning. Times: chunk k arrives at t = k + 1.
R = [" think", " about", " it", " more"]
A = [" the", " answer", " 42"]
CHUNKS = [(R[0:2], []), (R[2:4], []), ([], A[0:2]), ([], A[2:3])]
REASONING = "".join(R)
ANSWER = "".join(A)


def _field_pieces(continuous: bool) -> list[Piece]:
    """The reasoning-field variants (reasoning / reasoning_content / reasoning_details all
    arrive as field "reasoning")."""
    out = []
    for k, (r, a) in enumerate(CHUNKS):
        n = len(r) + len(a) if continuous else None
        if r:
            out.append(Piece(k + 1.0, "reasoning", "".join(r), n))
        if a:
            out.append(Piece(k + 1.0, "content", "".join(a), n))
    return out


def _tag_pieces(continuous: bool, open_tag: bool) -> list[Piece]:
    texts = ["".join(r) + "".join(a) for r, a in CHUNKS]
    if open_tag:
        texts[0] = "<think>" + texts[0]
    texts[2] = "</think>" + texts[2]
    return [
        Piece(k + 1.0, "content", t, len(r) + len(a) if continuous else None)
        for k, (t, (r, a)) in enumerate(zip(texts, CHUNKS, strict=True))
    ]


VARIANTS = {
    "field": _field_pieces,
    "think_tags": lambda c: _tag_pieces(c, open_tag=True),
    "think_open_only": lambda c: _tag_pieces(c, open_tag=False),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("continuous", [True, False])
def test_variants_give_the_same_split(variant: str, continuous: bool) -> None:
    split = classify(VARIANTS[variant](continuous), "r1")
    assert split.reasoning_text == REASONING
    assert split.answer_text == ANSWER
    assert split.first_token_s == 1.0
    assert split.reasoning_end_s == 2.0
    assert split.first_visible_s == 3.0
    assert [e.kind for e in split.events] == ["reasoning", "reasoning", "answer", "answer"]
    assert all(e.request_id == "r1" for e in split.events)
    tokens = split_tokens(split, completion_tokens=7 if continuous else None)
    if continuous:
        assert (tokens.reasoning_tokens, tokens.answer_tokens) == (4, 3)
        assert tokens.source == "continuous_usage"
    else:
        assert tokens.source is None and tokens.completion_tokens is None
        # with a completion count from usage, the character share is the fallback
        tokens = split_tokens(split, completion_tokens=14)
        assert tokens.source == "chars"
        expected = round(14 * len(REASONING) / (len(REASONING) + len(ANSWER)))
        assert (tokens.reasoning_tokens, tokens.answer_tokens) == (expected, 14 - expected)


def test_tags_split_across_chunks() -> None:
    texts = ["<th", "ink> step", " one</", "thi", "nk>", " done"]
    pieces = [Piece(float(i), "content", t, 1) for i, t in enumerate(texts)]
    split = classify(pieces, "r")
    assert split.reasoning_text == " step one"
    assert split.answer_text == " done"
    assert split.first_token_s == 0.0  # the <th fragment is generated text
    assert split.reasoning_end_s == 2.0
    assert split.first_visible_s == 5.0
    # tag-only pieces keep their tokens as zero-character reasoning events
    kinds = [(e.t_s, e.kind, e.n_chars, e.n_tokens) for e in split.events]
    assert kinds == [
        (0.0, "reasoning", 0, 1),
        (1.0, "reasoning", 5, 1),
        (2.0, "reasoning", 4, 1),
        (3.0, "reasoning", 0, 1),
        (4.0, "reasoning", 0, 1),
        (5.0, "answer", 5, 1),
    ]
    assert split_tokens(split, 6).reasoning_tokens == 5


def test_straddling_piece_becomes_two_events_with_one_time() -> None:
    pieces = [Piece(1.0, "content", "<think> a b", 3), Piece(2.0, "content", " c</think> dd", 3)]
    split = classify(pieces, "r")
    second = [e for e in split.events if e.t_s == 2.0]
    assert [(e.kind, e.n_chars) for e in second] == [("reasoning", 2), ("answer", 3)]
    assert [e.n_tokens for e in second] == [1, 2]  # 3 tokens shared 2:3 by characters
    assert split.reasoning_end_s == split.first_visible_s == 2.0


def test_open_tag_without_close_is_all_reasoning() -> None:
    split = classify([Piece(1.0, "content", "\n<think> going"), Piece(2.0, "content", " on")], "r")
    assert (split.reasoning_text, split.answer_text) == (" going on", "")
    assert split.first_visible_s is None
    assert split.reasoning_end_s == 2.0


def test_no_tags_is_all_answer_unless_think_is_assumed_open() -> None:
    pieces = [Piece(1.0, "content", " just"), Piece(2.0, "content", " text")]
    assert classify(pieces, "r").answer_text == " just text"
    assumed = classify(pieces, "r", assume_open_think=True)
    assert (assumed.reasoning_text, assumed.answer_text) == (" just text", "")


def test_tags_ignored_when_a_reasoning_field_is_used() -> None:
    pieces = [Piece(1.0, "reasoning", " hm"), Piece(2.0, "content", " a </think> b")]
    split = classify(pieces, "r")
    assert split.answer_text == " a </think> b"


def test_textless_token_chunks_inherit_the_phase() -> None:
    pieces = [
        Piece(0.5, "content", "", 1),  # before any text: takes the first known kind
        Piece(1.0, "reasoning", " r", 1),
        Piece(2.0, "content", "", 1),  # e.g. the swallowed </think> token
        Piece(3.0, "content", " a", 1),
        Piece(4.0, "content", "", 1),  # e.g. the EOS token on the finish chunk
    ]
    split = classify(pieces, "r")
    assert [e.kind for e in split.events] == [
        "reasoning", "reasoning", "reasoning", "answer", "answer"
    ]
    assert split.first_token_s == 1.0 and split.reasoning_end_s == 1.0
    tokens = split_tokens(split, 5)
    assert (tokens.reasoning_tokens, tokens.answer_tokens, tokens.source) == (
        3, 2, "continuous_usage"
    )


def test_token_source_preference() -> None:
    split = classify(_field_pieces(continuous=False), "r")
    chars = len(REASONING) / 10  # a tokenizer that counts one token per 10 characters

    def tok(text: str) -> int:
        return round(len(text) / 10)

    assert split_tokens(split, 20, usage_reasoning_tokens=12).source == "usage_details"
    assert split_tokens(split, 20, usage_reasoning_tokens=12).answer_tokens == 8
    # 0 reasoning tokens next to reasoning text is unreliable; > completion is impossible
    assert split_tokens(split, 20, usage_reasoning_tokens=0).source == "chars"
    assert split_tokens(split, 20, usage_reasoning_tokens=21).source == "chars"
    by_tok = split_tokens(split, 20, tokenizer=tok)
    assert (by_tok.source, by_tok.reasoning_tokens) == ("tokenizer", round(chars))
    no_usage = split_tokens(split, None, tokenizer=tok)
    assert no_usage.source == "tokenizer"
    assert no_usage.completion_tokens == tok(REASONING) + tok(ANSWER)

    plain = classify([Piece(1.0, "content", " hello")], "r")
    assert split_tokens(plain, 3).source == "usage"
    assert split_tokens(plain, 3).answer_tokens == 3


def test_continuous_counts_that_disagree_with_usage_fall_back() -> None:
    split = classify(_field_pieces(continuous=True), "r")
    tokens = split_tokens(split, 9, usage_reasoning_tokens=5)
    assert tokens.source == "usage_details"
    assert tokens.reasoning_tokens == 5


def test_empty_stream() -> None:
    split = classify([], "r")
    assert split.events == [] and split.first_token_s is None
    assert split_tokens(split, None).source is None
    assert split_tokens(split, 0).source == "usage"


# --- issue 9: cut-off thinking, honest per-chunk counts -------------------------------


def test_cut_inside_a_pre_opened_think_has_no_visible_token() -> None:
    """A pre-opened <think> cut by max_tokens before </think>: all reasoning, no first
    visible token, flagged as truncated inside thinking."""
    pieces = [Piece(1.0, "content", " step", 1), Piece(2.0, "content", " two", 1)]
    split = classify(pieces, "r", assume_open_think=True)
    assert (split.reasoning_text, split.answer_text) == (" step two", "")
    assert split.first_visible_s is None and split.first_token_s == 1.0
    assert split.think_open is True
    assert thinking_truncated(split, "length") is True
    assert thinking_truncated(split, "stop") is False
    # without the assumption it is an answer (the old behaviour, still right for "no")
    plain = classify(pieces, "r")
    assert plain.think_open is False and not thinking_truncated(plain, "length")


def test_bare_close_tag_is_evidence_of_a_pre_opened_think() -> None:
    pieces = [Piece(1.0, "content", " hm</think>"), Piece(2.0, "content", " 42")]
    split = classify(pieces, "r")
    assert split.think_open is True and split.answer_text == " 42"
    opened = classify([Piece(1.0, "content", "<think> hm</think> 42")], "r")
    assert opened.think_open is False  # the model opened it itself
    field = classify([Piece(1.0, "reasoning", " hm"), Piece(2.0, "content", " 42")], "r")
    assert field.think_open is None  # the server split it: no tag parsing


def test_reasoning_field_cut_is_thinking_truncated() -> None:
    split = classify([Piece(1.0, "reasoning", " hm", 1), Piece(2.0, "reasoning", " so", 1)], "r")
    assert thinking_truncated(split, "length") and split.first_visible_s is None


def test_counts_on_only_some_pieces_are_not_per_chunk_counts() -> None:
    """A server that puts the usage on the last content chunk only: that chunk would carry
    the whole completion count as if it were its own; no event gets a count."""
    pieces = [Piece(1.0, "content", " a"), Piece(2.0, "content", " b"),
              Piece(3.0, "content", " c", 50)]
    split = classify(pieces, "r")
    assert not split.has_chunk_tokens and split.chunk_tokens_sum is None
    assert [e.n_tokens for e in split.events] == [None, None, None]
    full = classify([Piece(1.0, "content", " a", 2), Piece(2.0, "content", " b", 3)], "r")
    assert full.has_chunk_tokens and full.chunk_tokens_sum == 5


def test_chunk_sum_that_disagrees_with_usage_is_kept_for_the_check() -> None:
    split = classify(_field_pieces(continuous=True), "r")
    assert split.chunk_tokens_sum == 7
    tokens = split_tokens(split, 9)  # final usage says 9: the chunk counts are not used
    assert tokens.source == "chars" and tokens.completion_tokens == 9
