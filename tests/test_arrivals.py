"""Arrival processes: sampled statistics, exact schedules, traces and flag validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reasonperf.errors import UsageError
from reasonperf.workload import make_arrival


def gap_stats(offsets: list[float]) -> tuple[float, float]:
    """(sample CV of the gaps, mean rate over the schedule)."""
    gaps = np.diff(offsets)
    return float(gaps.std(ddof=1) / gaps.mean()), (len(offsets) - 1) / offsets[-1]


def check_open(arrival, n: int) -> None:
    assert arrival.mode == "open" and arrival.batch_size is None
    assert len(arrival.offsets) == n and arrival.offsets[0] == 0.0
    assert all(b >= a for a, b in zip(arrival.offsets, arrival.offsets[1:], strict=False))


def test_gamma_matches_cv_and_rate() -> None:
    # With cv 2 the mean gap of 1,999 samples has a standard error of ~4.5 %, so the 5 %
    # bound holds for most seeds, not all; this one is fixed and checked.
    arrival = make_arrival("gamma", 2000, rate=8.0, cv=2.0, seed=3)
    check_open(arrival, 2000)
    cv, rate = gap_stats(arrival.offsets)
    assert abs(cv - 2.0) <= 0.2
    assert abs(rate - 8.0) <= 0.05 * 8.0


def test_gamma_shape_equals_cv_form_and_seed_is_deterministic() -> None:
    by_cv = make_arrival("gamma", 100, rate=5.0, cv=0.5, seed=11)
    by_shape = make_arrival("gamma", 100, rate=5.0, shape=4.0, seed=11)
    assert by_cv.offsets == by_shape.offsets
    other = make_arrival("gamma", 100, rate=5.0, shape=4.0, seed=12)
    assert other.offsets != by_cv.offsets
    cv, _ = gap_stats(make_arrival("gamma", 2000, rate=5.0, cv=1.0, seed=3).offsets)
    assert abs(cv - 1.0) <= 0.1


def test_poisson_cv_is_one() -> None:
    arrival = make_arrival("poisson", 2000, rate=20.0, seed=3)
    check_open(arrival, 2000)
    cv, rate = gap_stats(arrival.offsets)
    assert abs(cv - 1.0) <= 0.1
    assert abs(rate - 20.0) <= 0.05 * 20.0


def test_constant_is_exact() -> None:
    arrival = make_arrival("constant", 50, rate=4.0, concurrency=3)
    check_open(arrival, 50)
    assert arrival.offsets == [i / 4.0 for i in range(50)]
    assert arrival.offsets[-1] == 12.25
    assert arrival.concurrency == 3  # caps in-flight requests of an open schedule


def test_closed_loop_modes() -> None:
    assert make_arrival("batch", 10, batch_size=4).__dict__ == {
        "mode": "batch",
        "offsets": None,
        "batch_size": 4,
        "concurrency": None,
        "compact": False,
    }
    closed = make_arrival("concurrency", 10, concurrency=8)
    assert (closed.mode, closed.offsets, closed.concurrency) == ("closed", None, 8)


def test_trace_files(tmp_path: Path) -> None:
    plain = tmp_path / "trace.txt"
    plain.write_text("# arrival times\n100.5\n\n101.0  # burst\n101.0\n103.25\n")
    assert make_arrival("trace", 3, trace_file=str(plain)).offsets == [0.0, 0.5, 0.5]
    jsonl = tmp_path / "trace.jsonl"
    jsonl.write_text('{"timestamp": 5}\n{"timestamp": 6.5}\n')
    check_open(arrival := make_arrival("trace", 2, trace_file=str(jsonl)), 2)
    assert arrival.offsets == [0.0, 1.5]
    csv = tmp_path / "trace.csv"
    csv.write_text("offset,other\n0.0,a\n0.25,b\n2,c\n")
    assert make_arrival("trace", 3, trace_file=str(csv)).offsets == [0.0, 0.25, 2.0]
    with pytest.raises(UsageError, match="has 3 arrivals but 4 requests are planned"):
        make_arrival("trace", 4, trace_file=str(csv))


def test_trace_file_errors(tmp_path: Path) -> None:
    unsorted = tmp_path / "bad.txt"
    unsorted.write_text("1\n3\n2\n")
    with pytest.raises(UsageError, match="line 3: 2.0 comes before 3.0; sort the trace"):
        make_arrival("trace", 3, trace_file=str(unsorted))
    junk = tmp_path / "junk.txt"
    junk.write_text("1\nsoon\n")
    with pytest.raises(UsageError, match='line 2: "soon" is not a number'):
        make_arrival("trace", 2, trace_file=str(junk))
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("t\n1\n")
    with pytest.raises(UsageError, match="needs an 'offset' or 'timestamp' column"):
        make_arrival("trace", 1, trace_file=str(nocol))
    with pytest.raises(UsageError, match="no such file"):
        make_arrival("trace", 1, trace_file=str(tmp_path / "absent.txt"))
    with pytest.raises(UsageError, match="arrival 'trace' needs --trace-file"):
        make_arrival("trace", 1)


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("poisson", {"rate": -1}, r"--rate must be > 0 \(got -1\)"),
        ("constant", {"rate": 0.0}, r"--rate must be > 0 \(got 0.0\)"),
        ("gamma", {"cv": 2.0}, "arrival 'gamma' needs --rate"),
        ("gamma", {"rate": 1.0}, "arrival 'gamma' needs --cv"),
        ("gamma", {"rate": 1.0, "cv": 1.0, "shape": 1.0}, "--cv or --shape, not both"),
        ("gamma", {"rate": 1.0, "cv": -2.0}, r"--cv must be > 0 \(got -2.0\)"),
        ("poisson", {"rate": 1.0, "cv": 2.0}, "--cv does not apply to arrival 'poisson'"),
        ("batch", {}, "arrival 'batch' needs --batch-size"),
        ("batch", {"batch_size": 0}, r"--batch-size must be an integer >= 1 \(got 0\)"),
        ("batch", {"batch_size": 2, "rate": 1.0}, "--rate does not apply to arrival 'batch'"),
        ("concurrency", {}, "arrival 'concurrency' needs --concurrency"),
        ("concurrency", {"concurrency": 0}, r"--concurrency must be an integer >= 1"),
    ],
)
def test_validation_messages(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        make_arrival(name, 10, **kwargs)


def test_unknown_name_lists_choices() -> None:
    with pytest.raises(UsageError) as err:
        make_arrival("poison", 10, rate=1.0)
    msg = str(err.value)
    assert msg.startswith("unknown arrival 'poison'; choose one of:")
    for name in ("batch", "concurrency", "constant", "gamma", "poisson", "trace"):
        assert name in msg
    with pytest.raises(UsageError, match=r"number of requests must be >= 1 \(got 0\)"):
        make_arrival("poisson", 0, rate=1.0)
