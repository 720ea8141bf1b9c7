"""The record contract (docs/records.md): one row per request, one per chunk,
one per telemetry sample, plus the plan each request is sent from.

Times are seconds since the run's start on one monotonic clock (``time.perf_counter_ns``
relative to the run's anchor); run.json holds the wall-clock anchor.

Dataclasses (not pydantic) because the client creates one per request and one per chunk
on the hot path; the Arrow schemas below are what the store writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import pyarrow as pa


@dataclass(slots=True)
class Problem:
    """One item of a workload, before prompting and sampling."""

    dataset: str
    problem_id: str
    prompt: str  # the question text, without any instruction template
    gold: str | None = None  # gold answer text; None when the workload has none
    grader: str | None = None  # "math" | "gsm8k" | "aime" | "choice" | None
    difficulty: str | None = None  # e.g. "3" for MATH level 3, "easy"/"hard" for procedural
    domain: str | None = None  # "math" | "science" | "chat" | ...
    choices: list[str] | None = None  # multiple choice options (gold is one of them)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RequestPlan:
    """What the runner sends: one request, fully specified before the run starts."""

    request_id: str
    index: int  # position in the plan list (stable across resume)
    dataset: str
    problem_id: str
    sample_index: int
    messages: list[dict[str, str]]  # chat messages; for completions, joined into a prompt
    gold: str | None = None
    grader: str | None = None
    difficulty: str | None = None
    domain: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    scheduled_s: float | None = None  # absolute offset; None = decided by the runner (batch/closed loop)
    meta: dict[str, Any] = field(default_factory=dict)
    extra_body: dict[str, Any] = field(default_factory=dict)  # per-request body fields (replay)


@dataclass(slots=True)
class ChunkEvent:
    request_id: str
    t_s: float
    kind: str  # "reasoning" | "answer"
    n_tokens: int | None  # from per-chunk usage when the server reports it, else None
    n_chars: int


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    run_id: str
    dataset: str
    problem_id: str
    sample_index: int
    difficulty: str | None = None
    domain: str | None = None
    scheduled_s: float | None = None
    sent_s: float | None = None
    first_token_s: float | None = None
    first_visible_s: float | None = None
    reasoning_end_s: float | None = None
    done_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None
    answer_tokens: int | None = None
    token_count_source: str | None = None  # usage / usage_details / continuous_usage / tokenizer / chars
    # the raw counts the token check compares (issue 9): None when the server sent none
    usage_completion_tokens: int | None = None  # the final usage's completion_tokens
    usage_reasoning_tokens: int | None = None  # the server's completion_tokens_details.reasoning_tokens
    chunk_tokens_sum: int | None = None  # sum of per-chunk counts; None unless every chunk had one
    think_open: bool | None = None  # output read as starting inside <think>; None: server split it
    thinking_truncated: bool | None = None  # cut by max_tokens before any answer text
    finish_reason: str | None = None  # stop / length / error / cancelled
    status: str = "ok"  # "ok" | "error"
    error_type: str | None = None  # http_4xx / http_5xx / timeout / disconnect / malformed / connect / cancelled
    error: str | None = None
    http_status: int | None = None  # the response's status; None when none came
    retry_after_s: float | None = None  # Retry-After of a 429/503, in seconds
    pool_wait_s: float | None = None  # waited for a pooled connection (part of client queue)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    gold: str | None = None
    grader: str | None = None
    reasoning_text: str | None = None
    answer_text: str | None = None
    # added by grading
    extracted_answer: str | None = None
    extraction_method: str | None = None
    correct: bool | None = None
    truncated: bool | None = None
    # 1 for the first send of a request id; a resend (--resume --retry-errors, or a request
    # cancelled by Ctrl-C) is 2, 3, ... The earlier attempts stay in requests.jsonl.
    attempt: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


REQUEST_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("run_id", pa.string()),
        ("dataset", pa.string()),
        ("problem_id", pa.string()),
        ("sample_index", pa.int32()),
        ("difficulty", pa.string()),
        ("domain", pa.string()),
        ("scheduled_s", pa.float64()),
        ("sent_s", pa.float64()),
        ("first_token_s", pa.float64()),
        ("first_visible_s", pa.float64()),
        ("reasoning_end_s", pa.float64()),
        ("done_s", pa.float64()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("answer_tokens", pa.int64()),
        ("token_count_source", pa.string()),
        ("usage_completion_tokens", pa.int64()),
        ("usage_reasoning_tokens", pa.int64()),
        ("chunk_tokens_sum", pa.int64()),
        ("think_open", pa.bool_()),
        ("thinking_truncated", pa.bool_()),
        ("finish_reason", pa.string()),
        ("status", pa.string()),
        ("error_type", pa.string()),
        ("error", pa.string()),
        ("http_status", pa.int32()),
        ("retry_after_s", pa.float64()),
        ("pool_wait_s", pa.float64()),
        ("max_tokens", pa.int64()),
        ("temperature", pa.float64()),
        ("top_p", pa.float64()),
        ("seed", pa.int64()),
        ("gold", pa.string()),
        ("grader", pa.string()),
        ("reasoning_text", pa.string()),
        ("answer_text", pa.string()),
        ("extracted_answer", pa.string()),
        ("extraction_method", pa.string()),
        ("correct", pa.bool_()),
        ("truncated", pa.bool_()),
        ("attempt", pa.int32()),
    ]
)

CHUNK_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("t_s", pa.float64()),
        ("kind", pa.string()),
        ("n_tokens", pa.int32()),
        ("n_chars", pa.int32()),
    ]
)

TIMELINE_SCHEMA = pa.schema(
    [
        ("t_s", pa.float64()),
        ("source", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
    ]
)

assert [f.name for f in fields(RequestRecord)] == REQUEST_SCHEMA.names, "schema drift"
assert [f.name for f in fields(ChunkEvent)] == CHUNK_SCHEMA.names, "schema drift"


@dataclass(slots=True)
class TimelineSample:
    t_s: float
    source: str  # "engine" | "gpu" | ...
    metric: str  # unified vocabulary, see telemetry.names
    value: float
