"""The measured behaviour of tiny-thinker / tiny-instruct, from stored runs (issue 11).

Make the runs with the real engine, e.g. (50 problems per level):

    reasonperf run --engine vllm --model src/reasonperf/engines/thinker/weights/tiny-thinker --reasoning-parser deepseek_r1 \
      --workload procedural --option levels=1,2,3,4,5 --limit 250 --arrival batch \
      --batch-size 50 --max-tokens 1000 --temperature 0.6 --max-model-len 1024 --name thinker

then: python bench/thinker_behaviour.py runs/<thinker-run> [runs/<instruct-run>]

Prints one row per level: n, accuracy, reasoning tokens p50/p90 and p90/p50, answer tokens
max, closed thinking blocks among untruncated outputs, truncated; then the issue's targets.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


def table(run_dir: Path) -> dict[int, dict[str, float]]:
    rows = pq.read_table(run_dir / "requests.parquet").to_pylist()
    out: dict[int, dict[str, float]] = {}
    for level in sorted({int(r["difficulty"]) for r in rows}):
        rs = [r for r in rows if int(r["difficulty"]) == level and r["status"] == "ok"]
        reasoning = np.array([r["reasoning_tokens"] or 0 for r in rs], dtype=float)
        stopped = [r for r in rs if r["finish_reason"] == "stop"]
        closed = [r for r in stopped if "\\boxed{" in (r["answer_text"] or "")]
        p50, p90 = np.percentile(reasoning, 50), np.percentile(reasoning, 90)
        out[level] = {
            "n": len(rs),
            "accuracy": float(np.mean([bool(r["correct"]) for r in rs])),
            "reasoning_p50": float(p50),
            "reasoning_p90": float(p90),
            "tail_p90_p50": float(p90 / p50) if p50 else float("nan"),
            "answer_tokens_max": float(max(r["answer_tokens"] or 0 for r in rs)),
            "completion_tokens_max": float(max(r["completion_tokens"] or 0 for r in rs)),
            "closed": len(closed) / len(stopped) if stopped else float("nan"),
            "truncated": sum(r["finish_reason"] == "length" for r in rs) / len(rs),
        }
    return out


def print_table(name: str, t: dict[int, dict[str, float]]) -> None:
    print(f"\n{name}")
    cols = list(next(iter(t.values())))
    print("level " + " ".join(f"{c:>20}" for c in cols))
    for level, row in t.items():
        print(f"{level:>5} " + " ".join(f"{row[c]:>20.3f}" for c in cols))


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    thinker = table(Path(argv[0]))
    print_table(f"thinker: {argv[0]}", thinker)
    lv = sorted(thinker)
    checks = {
        "median reasoning L5 >= 5x L1": thinker[lv[-1]]["reasoning_p50"] >= 5 * thinker[lv[0]]["reasoning_p50"],
        "p90/p50 >= 1.5 at levels 3-5": all(thinker[k]["tail_p90_p50"] >= 1.5 for k in lv if k >= 3),
        "closed thinking >= 95 % of untruncated": all(thinker[k]["closed"] >= 0.95 for k in lv),
        "level 1 accuracy >= 70 %": thinker[lv[0]]["accuracy"] >= 0.7,
        "accuracy falls with level": thinker[lv[0]]["accuracy"] > thinker[lv[-1]]["accuracy"],
    }
    print(f"  ratio L{lv[-1]}/L{lv[0]} median reasoning: "
          f"{thinker[lv[-1]]['reasoning_p50'] / max(1.0, thinker[lv[0]]['reasoning_p50']):.1f}x")
    if len(argv) > 1:
        instruct = table(Path(argv[1]))
        print_table(f"instruct: {argv[1]}", instruct)
        checks["instruct: no thinking, <= 16 tokens"] = all(
            r["reasoning_p90"] == 0 and r["completion_tokens_max"] <= 16 for r in instruct.values())
    print()
    for what, ok in checks.items():
        print(f"  {'holds' if ok else 'SHORT'}: {what}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
