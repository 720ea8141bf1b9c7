"""Turn a RunSpec into the RequestPlans (workload x samples, prompted, scheduled).

Deterministic for a spec: a resumed run rebuilds the identical sequence and skips the
request_ids already stored. Plans and offsets are streamed, never held whole, so the
number of requests costs no memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Set
from typing import Any

from reasonperf.config import RunSpec
from reasonperf.records import Problem, RequestPlan
from reasonperf.workload.arrivals import Arrival, make_arrival
from reasonperf.workload.datasets import load_workload
from reasonperf.workload.prompts import build_messages
from reasonperf.workload.replay import replay_request


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


class Plans:
    """The run's requests, built one at a time as the runner asks for them.

    Request ``index`` is problem ``(index // samples) mod len(problems)``, sample
    ``index mod samples`` (problem-major, cycled to ``num_requests``), so any size costs
    the memory of one plan, and a resumed run rebuilds the same ids and skips
    ``skip_ids`` without building the plans before them. ``len()`` is the number that
    will be yielded.

    ``shard=(i, n)``: only the indices ``i, i+n, i+2n, ...`` (a sharded run's slice,
    dealt round-robin from the one global sequence; see scaleout/).
    """

    def __init__(self, spec: RunSpec, problems: list[Problem], skip_ids: Set[str] = frozenset(),
                 shard: tuple[int, int] | None = None) -> None:
        self.spec = spec
        self.problems = problems
        self.skip_ids = skip_ids
        self.shard = shard
        self.distinct = len(problems) * spec.workload.samples  # one pass over the workload
        n = spec.workload.num_requests
        self.total = self.distinct if n is None or not problems else n
        self._skipped = sum(1 for i in skip_ids if self._owns(_index_of(i, self.total)))

    def _indices(self) -> range:
        first, step = self.shard or (0, 1)
        return range(first, self.total, step)

    def _owns(self, index: int | None) -> bool:
        return index is not None and (self.shard is None or index % self.shard[1] == self.shard[0])

    def __len__(self) -> int:
        return len(self._indices()) - self._skipped

    @property
    def cycled(self) -> bool:
        """True when the size asks for more requests than the workload holds."""
        return self.total > self.distinct

    def cycle_note(self) -> str:
        w = self.spec.workload
        return (
            f"{self.total:,} requests from {len(self.problems):,} problems x {w.samples} "
            f"samples ({self.distinct:,} distinct): the workload is cycled, each prompt is "
            f"sent about {self.total / self.distinct:,.1f} times"
        )

    def __iter__(self) -> Iterator[RequestPlan]:
        skip = self.skip_ids
        for index in self._indices():
            if skip and request_id(index) in skip:
                continue
            yield self.plan(index)

    def plan(self, index: int) -> RequestPlan:
        w, s = self.spec.workload, self.spec.sampling
        problem = self.problems[(index // w.samples) % len(self.problems)]
        sample_index = index % w.samples
        messages, gold, meta = build_messages(
            problem,
            style=w.prompt_style,
            sample_index=sample_index,
            seed=self.spec.seed,
            template=w.prompt_template,
        )
        max_tokens = s.max_tokens
        extra_body: dict[str, Any] = {}
        replayed = replay_request(problem)  # forced lengths: its own prompt and max_tokens
        if replayed is not None:
            messages, max_tokens, extra_body = replayed
        return RequestPlan(
            request_id=request_id(index),
            index=index,
            dataset=problem.dataset,
            problem_id=str(problem.problem_id),
            sample_index=sample_index,
            messages=messages,
            gold=gold,
            grader=problem.grader,
            difficulty=problem.difficulty,
            domain=problem.domain,
            max_tokens=max_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            seed=self.spec.seed + index if s.request_seeds else None,
            meta={**problem.meta, **meta},
            extra_body=extra_body,
        )


def request_id(index: int) -> str:
    return f"r{index:06d}"


def _index_of(rid: str, total: int) -> int | None:
    """The plan index of a request id of this run, or None."""
    if not rid.startswith("r") or not rid[1:].isdigit():
        return None
    i = int(rid[1:])
    return i if i < total and request_id(i) == rid else None


def build_plans(spec: RunSpec, problems: list[Problem], skip_ids: Set[str] = frozenset(),
                shard: tuple[int, int] | None = None) -> Plans:
    """Every problem ``samples`` times (problem-major), cut or cycled to num_requests,
    minus ``skip_ids`` (finished requests of a resumed run); built lazily. ``shard``:
    see :class:`Plans`."""
    return Plans(spec, problems, skip_ids, shard)


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


def schedule(plans: Iterable[RequestPlan], arrival: Arrival, start_s: float = 0.0,
             absolute: bool = False) -> Iterator[RequestPlan]:
    """Stamp open-loop offsets on the plans as they stream by, shifted so the first plan
    is at ``start_s``. Plans come in index order (some skipped on resume); the offsets are
    walked alongside, so neither is ever held whole. ``absolute``: the global schedule's
    offset 0 (request 0) is at ``start_s`` instead, whichever plan comes first (a shard's
    slice keeps its place in the one global schedule)."""
    if arrival.mode != "open":
        yield from plans
        return
    assert arrival.offsets is not None
    offsets = iter(arrival.offsets)
    pos, offset, base = -1, 0.0, None
    for plan in plans:
        # compact (a resume): after the first plan, each takes the next slot
        target = pos + 1 if arrival.compact and base is not None else plan.index
        while pos < target:
            offset = next(offsets)
            pos += 1
        if base is None:
            base = 0.0 if absolute else offset
        plan.scheduled_s = start_s + offset - base
        yield plan
