"""Every analysis, registered, and one entry point that runs them over a set of runs.

Importing this module imports each analysis module, so ``ANALYSES`` is complete. A new
analysis is one module with ``@ANALYSES.register(name)`` plus one import line here (and
its name in ``MULTI_RUN`` when it reads several runs at once).
"""

from __future__ import annotations

from reasonperf.analysis import (  # noqa: F401  (imported to register)
    budget,
    compare,
    difficulty,
    domains,
    findings,
    memory,
    stragglers,
)
from reasonperf.analysis.base import ANALYSES, AnalysisResult, RunData

# analyses of the whole set of runs; every other analysis runs on each run separately
MULTI_RUN = frozenset({"budget", "compare", "findings"})


def run_analyses(runs: list[RunData], names: list[str] | None = None) -> list[AnalysisResult]:
    """Run the named analyses (all when None, in registry order).

    Single-run analyses run once per run (titles then name the run when there are
    several); multi-run ones run once on the whole set and come back with ``skipped``
    set when the set does not allow them (one run, a single max_tokens). An unknown name raises UsageError.
    """
    # the findings table reads every other analysis's question at once: it goes first
    chosen = sorted(ANALYSES.names() if names is None else list(names),
                    key=lambda n: n != "findings")
    fns = {name: ANALYSES.get(name) for name in chosen}  # validates every name first
    results: list[AnalysisResult] = []
    for name, fn in fns.items():
        if name in MULTI_RUN:
            results.append(fn(runs))  # each one says itself why it skips a lone run
            continue
        for run in runs:
            result = fn([run])
            if not result.skipped:
                result.numbers.setdefault("run", run.label)
            if len(runs) > 1:
                result.title = f"{result.title} ({run.label})"
            results.append(result)
    return results
