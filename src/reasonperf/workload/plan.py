"""Turn a RunSpec into the list of RequestPlans (workload x samples, prompted, scheduled).

Deterministic for a spec: a resumed run rebuilds the identical list and skips the
request_ids already stored.
"""

from __future__ import annotations

import itertools

from reasonperf.config import RunSpec
from reasonperf.records import Problem, RequestPlan
from reasonperf.workload.arrivals import Arrival, make_arrival
from reasonperf.workload.datasets import load_workload
from reasonperf.workload.prompts import build_messages


def load_problems(spec: RunSpec) -> list[Problem]:
    w = spec.workload
    return load_workload(
        w.name,
        data_file=w.data_file,
        field_map=w.field_map or None,
        limit=w.limit,
        seed=spec.seed,
        options=w.options or None,
    )


def build_plans(spec: RunSpec, problems: list[Problem]) -> list[RequestPlan]:
    """Every problem ``samples`` times (problem-major), cut or cycled to num_requests."""
    w, s = spec.workload, spec.sampling
    pairs = [(p, k) for p in problems for k in range(w.samples)]
    if w.num_requests is not None:
        pairs = list(itertools.islice(itertools.cycle(pairs), w.num_requests)) if pairs else []
    plans = []
    for index, (problem, sample_index) in enumerate(pairs):
        messages, gold, meta = build_messages(
            problem,
            style=w.prompt_style,
            sample_index=sample_index,
            seed=spec.seed,
            template=w.prompt_template,
        )
        plans.append(
            RequestPlan(
                request_id=f"r{index:06d}",
                index=index,
                dataset=problem.dataset,
                problem_id=str(problem.problem_id),
                sample_index=sample_index,
                messages=messages,
                gold=gold,
                grader=problem.grader,
                difficulty=problem.difficulty,
                domain=problem.domain,
                max_tokens=s.max_tokens,
                temperature=s.temperature,
                top_p=s.top_p,
                seed=spec.seed + index if s.request_seeds else None,
                meta={**problem.meta, **meta},
            )
        )
    return plans


DEFAULT_BATCH_SIZE = 16  # the study's pilot batch size


def build_arrival(spec: RunSpec, n: int) -> Arrival:
    a = spec.arrival
    batch_size = a.batch_size
    if a.name == "batch" and batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE
    return make_arrival(
        a.name,
        n,
        rate=a.rate,
        cv=a.cv,
        shape=a.shape,
        batch_size=batch_size,
        concurrency=a.concurrency,
        trace_file=a.trace_file,
        seed=spec.seed,
    )


def schedule(plans: list[RequestPlan], arrival: Arrival, start_s: float = 0.0) -> None:
    """Stamp open-loop offsets on the plans (shifted to start at ``start_s``)."""
    if arrival.mode != "open" or not plans:
        return
    assert arrival.offsets is not None
    base = arrival.offsets[plans[0].index]
    for plan in plans:
        plan.scheduled_s = start_s + arrival.offsets[plan.index] - base
