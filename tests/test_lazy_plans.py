"""Any size (issue 10.6): plans and open-loop schedules are streamed, so memory stays flat
in the number of requests; a workload cycled to fill the size is said before sending."""

from __future__ import annotations

import io
import itertools
import tracemalloc

import numpy as np
from rich.console import Console

from reasonperf.config import load_run_spec
from reasonperf.run import execute_run
from reasonperf.workload.arrivals import make_arrival
from reasonperf.workload.plan import build_plans, load_problems, schedule
from tests.fake_server import FakeServer, Programme


def _spec(**workload):
    return load_run_spec({"workload": {"name": "procedural", "limit": 5, **workload},
                          "arrival": {"name": "poisson", "rate": 10.0}})


def _peak_mib(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_plans_are_built_lazily_for_any_size():
    spec = _spec(num_requests=100_000)
    problems = load_problems(spec)

    def first_ten():
        plans = build_plans(spec, problems)
        assert len(plans) == 100_000  # the size is known without building the plans
        head = list(itertools.islice(plans, 10))
        assert [p.request_id for p in head] == [f"r{i:06d}" for i in range(10)]

    assert _peak_mib(first_ten) < 5


def test_lazy_plans_equal_the_eager_order_and_skip_finished_ids():
    spec = _spec(num_requests=12, samples=2)
    problems = load_problems(spec)
    plans = list(build_plans(spec, problems))
    assert [(p.problem_id, p.sample_index) for p in plans[:4]] == [
        (problems[0].problem_id, 0), (problems[0].problem_id, 1),
        (problems[1].problem_id, 0), (problems[1].problem_id, 1)]
    assert plans[10].problem_id == problems[0].problem_id  # cycled after 5 x 2
    rest = list(build_plans(spec, problems, skip_ids={"r000000", "r000003"}))
    assert [p.index for p in rest] == [i for i in range(12) if i not in (0, 3)]


def test_open_loop_offsets_are_streamed_and_equal_the_eager_draws():
    n = 2_000_000
    peak = _peak_mib(lambda: list(itertools.islice(iter(make_arrival("gamma", n, rate=5.0, cv=2.0,
                                                                      seed=3).offsets), 10)))
    assert peak < 5
    arrival = make_arrival("poisson", 50_000, rate=20.0, seed=7)
    rng = np.random.default_rng(7)
    eager = np.concatenate(([0.0], np.cumsum(rng.exponential(1 / 20.0, size=50_000 - 1))))
    assert list(arrival.offsets) == eager.tolist()  # the same draws, block by block


def test_schedule_streams_offsets_by_plan_index():
    arrival = make_arrival("constant", 10, rate=2.0)
    spec = load_run_spec({"workload": {"name": "procedural", "limit": 10}})
    plans = build_plans(spec, load_problems(spec), skip_ids={"r000000", "r000001", "r000004"})
    stamped = list(schedule(plans, arrival, start_s=100.0))
    assert [p.index for p in stamped] == [2, 3, 5, 6, 7, 8, 9]
    assert [p.scheduled_s for p in stamped] == [100.0 + (i - 2) / 2.0 for i in (2, 3, 5, 6, 7, 8, 9)]


def test_a_cycled_workload_is_said_in_one_line_before_sending(tmp_path):
    out = io.StringIO()
    with FakeServer(Programme(reasoning_tokens=1, answer_tokens=1)) as srv:
        res = execute_run(load_run_spec({
            "out": str(tmp_path), "grade": False,
            "engine": {"kind": "external", "url": srv.base_url, "model": "fake-model"},
            "workload": {"name": "procedural", "limit": 3, "num_requests": 7},
            "arrival": {"name": "batch", "batch_size": 7}}),
            console=Console(file=out, width=200))
    text = out.getvalue()
    lines = [line for line in text.splitlines() if "cycl" in line]
    assert len(lines) == 1, text
    assert "7 requests" in lines[0] and "3 problems" in lines[0]
    assert res.summary["requests"]["total"] == 7


def _store_with(tmp_path, n: int):
    from reasonperf.records import ChunkEvent, RequestRecord
    from reasonperf.store import RunStore

    store = RunStore.create(tmp_path, f"fold{n}")
    store.write_json("run.json", {})
    for i in range(n):
        rid = f"r{i:06d}"
        store.append_request(
            RequestRecord(rid, "x", "d", "p", 0, sent_s=float(i), done_s=i + 1.0, completion_tokens=3),
            [ChunkEvent(rid, i + 0.5, "answer", 3, 15)])
    store.append_request(RequestRecord("r000001", "x", "d", "p", 0, status="error",
                                       error_type="http_5xx"), [])  # a later record wins
    store.close()
    return store


def test_fold_memory_is_flat_in_the_number_of_requests(tmp_path):
    import pyarrow.parquet as pq

    peaks = {}
    for n in (10_000, 40_000):
        store = _store_with(tmp_path, n)
        peaks[n] = _peak_mib(store.fold)
        req = pq.read_table(store.dir / "requests.parquet")
        assert req.num_rows == n
        rows = {r["request_id"]: r for r in req.select(["request_id", "status"]).to_pylist()}
        assert len(rows) == n and rows["r000001"]["status"] == "error"
        assert pq.read_table(store.dir / "chunks.parquet").num_rows == n - 1
    assert peaks[40_000] < 1.6 * peaks[10_000], peaks
