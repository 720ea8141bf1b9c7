"""``--workload replay:lengths.json``: replay a fitted length distribution on any engine.

Each request has a prompt of the target prompt length and an output length forced to
the target completion length (reasoning + answer): ``max_tokens`` = ``min_tokens`` = the
target, with ``ignore_eos: true``. vLLM and SGLang both take ``min_tokens`` and
``ignore_eos`` in their OpenAI-compatible request body; an external endpoint gets the
same fields (a server that ignores them stops early, which the check flags). The split
of the output into reasoning and answer cannot be forced: the targets are kept in the
problem id (``p{prompt}-r{reasoning}-a{answer}-{i}``), so a stored run is checked without
the lengths file.

The prompt is filler text: one short common word per target token, which is one token
each in the usual BPE vocabularies; the chat template adds its own. The measured prompt
length is the record's ``prompt_tokens`` and the summary reports its error against the
target. Completion tokens are checked exactly: a record whose completion differs from
its target is a mismatch (summary.json ``replay``, and a warning).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from reasonperf.errors import UsageError
from reasonperf.records import Problem
from reasonperf.workload.lengths import check_lengths, sample_group

PREFIX = "replay"
FILLER = ("the", "of", "and", "to", "in", "is", "it", "that", "for", "on", "as", "at",
          "by", "be", "this", "we")
_ID = re.compile(r"^p(\d+)-r(\d+)-a(\d+)-\d+$")
EXAMPLES = 5


def filler_text(n_tokens: int) -> str:
    return " ".join(FILLER[i % len(FILLER)] for i in range(max(1, n_tokens)))


def load_replay(path: str | None, n: int | None, seed: int) -> list[Problem]:
    """``n`` requests (default: as many as the fitted runs held) drawn from the groups in
    proportion to their sizes."""
    if not path:
        raise UsageError("the replay workload needs its lengths file: --workload "
                         "replay:lengths.json (make it with reasonperf workload fit)")
    try:
        with open(path, "rb") as f:
            data = check_lengths(orjson.loads(f.read()), path)
    except FileNotFoundError:
        raise UsageError(f"lengths file {path} not found; check the path") from None
    except orjson.JSONDecodeError:
        raise UsageError(f"lengths file {path} is not JSON; make it with reasonperf "
                         "workload fit RUN... -o lengths.json") from None
    groups = data["groups"]
    sizes = np.asarray([g["n"] for g in groups], dtype=float)
    total = int(n if n is not None else sizes.sum())
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(total, sizes / sizes.sum())
    problems: list[Problem] = []
    for group, count in zip(groups, counts, strict=True):
        for p, r, a in sample_group(group, int(count), rng, data["tail_from"]):
            i = len(problems)
            problems.append(Problem(
                dataset=group["dataset"], problem_id=f"p{p}-r{r}-a{a}-{i}",
                prompt=filler_text(p), difficulty=group["difficulty"], domain=None,
                meta={PREFIX: {"prompt_tokens": p, "reasoning_tokens": r,
                               "answer_tokens": a, "completion_tokens": max(1, r + a)}}))
    return problems


def replay_request(problem: Problem) -> tuple[list[dict[str, str]], int, dict[str, Any]] | None:
    """(messages, max_tokens, extra body) of a replayed problem; None for any other."""
    target = problem.meta.get(PREFIX)
    if target is None:
        return None
    c = int(target["completion_tokens"])
    return ([{"role": "user", "content": problem.prompt}], c,
            {"min_tokens": c, "ignore_eos": True})


def is_replay(workload_name: str | None) -> bool:
    return bool(workload_name) and str(workload_name).split(":", 1)[0] == PREFIX


def replay_summary(requests: pa.Table) -> dict[str, Any]:
    """Forced lengths checked per request: completion tokens against the target
    (max_tokens), prompt tokens against the target in the problem id."""
    rows = [r for r in requests.select(
        ["request_id", "problem_id", "status", "max_tokens", "completion_tokens",
         "prompt_tokens", "finish_reason"]).to_pylist() if r["status"] == "ok"]
    unknown = [r for r in rows if r["completion_tokens"] is None]
    bad = [r for r in rows if r["completion_tokens"] is not None
           and r["completion_tokens"] != r["max_tokens"]]
    prompt_err = []
    for r in rows:
        m = _ID.match(r["problem_id"] or "")
        if m and r["prompt_tokens"] is not None:
            prompt_err.append(r["prompt_tokens"] - int(m.group(1)))
    targets = [r["max_tokens"] for r in rows if r["max_tokens"] is not None]
    return {
        "requests": len(rows),
        "completion_target_mean": float(np.mean(targets)) if targets else None,
        "mismatches": len(bad),
        "completion_unknown": len(unknown),
        "short": sum(1 for r in bad if r["completion_tokens"] < r["max_tokens"]),
        "examples": [{"request_id": r["request_id"], "target": r["max_tokens"],
                      "got": r["completion_tokens"], "finish_reason": r["finish_reason"]}
                     for r in bad[:EXAMPLES]],
        "prompt_tokens_error": ({"mean": float(np.mean(prompt_err)),
                                 "max_abs": int(np.max(np.abs(prompt_err))),
                                 "requests": len(prompt_err)} if prompt_err else None),
    }


def replay_warning(block: dict[str, Any]) -> str | None:
    if not block["mismatches"]:
        return None
    ex = block["examples"][0]
    return (f"forced lengths failed for {block['mismatches']} of {block['requests']} "
            f"replayed requests (e.g. {ex['request_id']}: {ex['got']} of {ex['target']} "
            f"tokens, finish {ex['finish_reason']}); the engine stopped early despite "
            "min_tokens/ignore_eos (several EOS ids?)")
