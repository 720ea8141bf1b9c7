"""Budget adherence (summary.json ``budget``): did the engine keep the thinking budget?

Over the ok requests: ``violations`` counts requests whose reasoning tokens exceed the
budget (``worst_excess`` is the largest overshoot), ``ended_in_thinking`` those cut while
still thinking (``thinking_truncated``), ``no_answer`` those without visible answer text
(no first visible token). Requests whose reasoning count is unknown are counted as such,
never as adherent.

The reasoning count judged is the server's own (``usage_reasoning_tokens``) where it
reports one: that is the count a budget is defined on (the tokens between the tags).
The client's count can hold the opening tag the model generated itself (vLLM +
deepseek_r1: budget 5, server 5, client 6), so it is judged only where the server gives
none, and its own verdict is kept beside (``client_violations``) for the disagreement.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

EXAMPLES = 5


def budget_summary(requests: pa.Table, budget: int | None, field: str | None = None
                   ) -> dict[str, Any] | None:
    """The adherence block for ``budget`` (None when no budget was set)."""
    if budget is None:
        return None
    rows = [r for r in requests.select(
        ["request_id", "status", "reasoning_tokens", "usage_reasoning_tokens",
         "thinking_truncated", "first_visible_s"]
    ).to_pylist() if r["status"] == "ok"]
    for r in rows:
        server = r["usage_reasoning_tokens"]
        r["judged"] = server if server is not None else r["reasoning_tokens"]
    known = [r for r in rows if r["judged"] is not None]
    over = [r for r in known if r["judged"] > budget]
    excess = [r["judged"] - budget for r in over]
    client_over = [r for r in rows
                   if r["reasoning_tokens"] is not None and r["reasoning_tokens"] > budget]
    return {
        "budget": budget,
        "field": field,
        "requests": len(rows),
        "reasoning_unknown": len(rows) - len(known),
        "count_source": {"server": sum(1 for r in rows if r["usage_reasoning_tokens"] is not None),
                         "client": sum(1 for r in rows if r["usage_reasoning_tokens"] is None
                                       and r["reasoning_tokens"] is not None)},
        "violations": len(over),
        "worst_excess": max(excess) if excess else (0 if known else None),
        "violation_examples": [r["request_id"] for r in over[:EXAMPLES]],
        "client_violations": len(client_over),
        "ended_in_thinking": sum(1 for r in rows if r["thinking_truncated"]),
        "no_answer": sum(1 for r in rows if r["first_visible_s"] is None),
    }
