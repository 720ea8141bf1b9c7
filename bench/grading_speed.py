"""Grading speed: this checkout's graders against a baseline revision, side by side.

Grades the same rows with both versions: the hand-labelled corpus
(tests/data/grading_corpus.jsonl) plus every gold of the shared GSM8K, MATH-500 and AIME24
copies written as "The answer is \\boxed{gold}" (what the gold round-trip test grades).
Each version runs in its own subprocess (the baseline from ``git archive REV``), in turns
A B A B..., and reports per grader the in-process microseconds per item (workers=0, the
pure cost of extraction and comparison) and the wall time of ``grade_rows`` through the
process pool (workers=2, spawn included), then the ratio this/baseline.

    PYTHONPATH=$PWD/src .venv/bin/python bench/grading_speed.py [--baseline REV] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "grading_corpus.jsonl"
SHARED = ROOT.parent / "shared" / "datasets"


def _load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def build_rows(shared: Path) -> list[dict[str, Any]]:
    rows = [
        {"answer_text": c["response"], "gold": c["gold"], "grader": c["kind"]}
        for c in _load(CORPUS)
    ]
    if shared.is_dir():
        golds = [("gsm8k", d["answer"], d["answer"].rsplit("####", 1)[1].strip())
                 for d in _load(shared / "gsm8k_test.jsonl")]
        golds += [("math", d["answer"], d["answer"]) for d in _load(shared / "math500.jsonl")]
        golds += [("aime", d["answer"], d["answer"]) for d in _load(shared / "aime24.jsonl")]
        rows += [{"answer_text": f"The answer is \\boxed{{{ans}}}", "gold": gold, "grader": kind}
                 for kind, gold, ans in golds]
    return rows


_WORKER = r"""
import json, sys, time
from reasonperf.grading import grade_rows
rows = json.load(sys.stdin)
out = {}
for kind in sorted({r["grader"] for r in rows}):
    part = [r for r in rows if r["grader"] == kind]
    t0 = time.perf_counter()
    grade_rows(part, workers=0, timeout_s=None)
    out[kind] = (time.perf_counter() - t0) / len(part) * 1e6
t0 = time.perf_counter()
grade_rows(rows, workers=2)
out["pool_wall_s"] = time.perf_counter() - t0
print(json.dumps(out))
"""


def run_version(src: Path, rows: list[dict[str, Any]]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run([sys.executable, "-c", _WORKER], input=json.dumps(rows), env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def export_baseline(rev: str, into: Path) -> Path:
    blob = subprocess.run(["git", "archive", rev, "src/reasonperf"], cwd=ROOT,
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default="main", help="git revision to compare with")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rows = build_rows(SHARED)
    print(f"{len(rows)} rows; baseline {args.baseline}; {args.repeats} alternating repeats")
    results: dict[str, list[dict[str, float]]] = {"this": [], "baseline": []}
    with tempfile.TemporaryDirectory() as tmp:
        baseline_src = export_baseline(args.baseline, Path(tmp))
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            results["this"].append(run_version(ROOT / "src", rows))
            results["baseline"].append(run_version(baseline_src, rows))
    print(f"(bench took {time.perf_counter() - t0:.0f} s)")
    print(f"{'measure':<22}{'this':>12}{'baseline':>12}{'ratio':>8}")
    for key in results["this"][0]:
        this = median(r[key] for r in results["this"])
        base = median(r[key] for r in results["baseline"])
        unit = "s" if key.endswith("_s") else "us/item"
        name = key if key.endswith("_s") else f"{key} ({unit})"
        print(f"{name:<22}{this:>12.1f}{base:>12.1f}{this / base:>8.2f}")


if __name__ == "__main__":
    main()
