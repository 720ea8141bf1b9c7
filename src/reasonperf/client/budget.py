"""Thinking budgets (issue 14): which request field carries the budget, per engine kind.

- vLLM (0.32, also the CPU build): ``thinking_token_budget``. The engine refuses it
  unless it runs with a reasoning parser (``--reasoning-parser``/``--reasoning-config``:
  ``vllm/v1/engine/input_processor.py``), so a launched vLLM without one is a usage error.
- SGLang: a hard per-request budget only with ``--enable-strict-thinking``, read from
  ``custom_params.thinking_budget`` (its ``thinking_budget`` chat-template kwarg is a
  hint the template may ignore, so it is not used).
- An external endpoint: vLLM's ``thinking_token_budget`` unless ``budget_field`` names
  another field.

``reasoning_effort`` is the chat API's own field (vLLM, SGLang, gpt-oss style models).
"""

from __future__ import annotations

from typing import Any

from reasonperf.config import RunSpec, SamplingSpec
from reasonperf.engines.spec import EngineSpec
from reasonperf.errors import UsageError

VLLM_FIELD = "thinking_token_budget"
SGLANG_STRICT_FLAG = "--enable-strict-thinking"


def effective_budget(sampling: SamplingSpec) -> int | None:
    """The budget sent: min(thinking_budget, max_tokens - answer_reserve); None when
    neither a budget nor a reserve is set."""
    budget = sampling.thinking_budget
    reserve = sampling.answer_reserve
    if reserve is None:
        return budget
    if sampling.max_tokens is None or reserve >= sampling.max_tokens:
        raise UsageError(
            f"sampling.answer_reserve ({reserve}) must be below max_tokens "
            f"({sampling.max_tokens}); lower --answer-reserve or raise --max-tokens")
    left = sampling.max_tokens - reserve
    return left if budget is None else min(budget, left)


def _has_arg(engine: EngineSpec, flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in engine.extra_args)


def budget_field(engine: EngineSpec, override: str | None) -> str:
    """The dotted body field of the budget for this engine, or a UsageError saying why
    the engine has none."""
    if engine.kind == "external":
        return override or VLLM_FIELD
    if override is not None:
        raise UsageError(
            f"--budget-field is for an external endpoint; a launched {engine.kind} "
            "gets its own field: drop --budget-field")
    if engine.kind == "vllm":
        if engine.reasoning_parser or _has_arg(engine, "--reasoning-parser") or _has_arg(
                engine, "--reasoning-config"):
            return VLLM_FIELD
        raise UsageError(
            "--thinking-budget: vLLM honours thinking_token_budget only with a reasoning "
            "parser; add --reasoning-parser NAME (e.g. deepseek_r1)")
    if _has_arg(engine, SGLANG_STRICT_FLAG):
        return "custom_params.thinking_budget"
    raise UsageError(
        f"--thinking-budget: SGLang enforces a budget only with {SGLANG_STRICT_FLAG}; "
        f"add --engine-arg {SGLANG_STRICT_FLAG}")


def _put(body: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        body = body.setdefault(key, {})
    body[leaf] = value


def budget_body(spec: RunSpec) -> dict[str, Any]:
    """The extra request-body fields of the spec's budget settings ({} when none)."""
    s = spec.sampling
    body: dict[str, Any] = {}
    budget = effective_budget(s)
    if budget is not None:
        _put(body, budget_field(spec.engine, s.budget_field), budget)
    elif s.budget_field is not None:
        raise UsageError("--budget-field names where a budget goes; add --thinking-budget N")
    if s.reasoning_effort is not None:
        if spec.api != "chat":
            raise UsageError("--reasoning-effort is a chat API field; use --api chat")
        body["reasoning_effort"] = s.reasoning_effort
    return body


def budget_info(spec: RunSpec) -> dict[str, Any] | None:
    """run.json's ``budget``: the budget sent and its field (None when no budget); raises
    the UsageError of an engine without one before anything starts."""
    body = budget_body(spec)
    budget = effective_budget(spec.sampling)
    if budget is None:
        return None
    field = budget_field(spec.engine, spec.sampling.budget_field)
    return {"budget": budget, "field": field, "requested": spec.sampling.thinking_budget,
            "answer_reserve": spec.sampling.answer_reserve, "body": body}
