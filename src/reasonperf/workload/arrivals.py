"""Arrival processes: when each request is sent (the ``ARRIVALS`` registry).

Open-loop processes (poisson, gamma, constant, trace) are sampled up front into
*absolute* offsets from the run's start. The runner sleeps until ``start + offsets[i]``
rather than sleeping each gap in turn: relative sleeps add every wake-up delay to all the
later requests, so a long run drifts and its real rate falls below the asked rate, while
absolute deadlines keep each late send from delaying the next. Sampling before the run
with one seeded generator also makes the schedule reproducible and independent of how
fast the server answers.

Offsets are streamed (:class:`Offsets`): drawn block by block from the same seeded
generator, so a schedule of a billion requests costs as little memory as one of ten, and
equals, value for value, the schedule drawn all at once.

Closed-loop processes (batch, concurrency) have no offsets: the next request depends on
when earlier ones finish, which only the runner knows.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from reasonperf.errors import UsageError
from reasonperf.registry import Registry
from reasonperf.workload.files import read_rows

BLOCK = 65_536  # offsets drawn per block: big enough for numpy speed, small in memory


class Offsets:
    """A lazy, re-iterable schedule of n absolute offsets (first = 0).

    ``stream()`` yields the offsets from a fresh start each time (a seeded generator is
    re-created), so iterating twice gives the same values. Indexing and comparison walk
    the stream; they are for tests and small schedules, the runner only iterates.
    """

    def __init__(self, n: int, stream: Callable[[], Iterator[float]]) -> None:
        self.n = n
        self.stream = stream

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[float]:
        return itertools.islice(self.stream(), self.n)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return list(self)[index]
        i = index + self.n if index < 0 else index
        if not 0 <= i < self.n:
            raise IndexError(index)
        return next(itertools.islice(iter(self), i, None))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Offsets | list | tuple):
            return len(self) == len(other) and all(
                a == b for a, b in zip(self, other, strict=True)
            )
        return NotImplemented

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.fromiter(iter(self), dtype=dtype or float, count=self.n)

    def __repr__(self) -> str:
        return f"Offsets(n={self.n})"


def _cumulative(n: int, draw: Callable[[np.random.Generator, int], np.ndarray], seed: int
                ) -> Offsets:
    """Offsets 0, g0, g0+g1, ... from n-1 gaps drawn in blocks (the running sum carries
    over exactly, so the values equal one cumsum over all gaps)."""

    def stream() -> Iterator[float]:
        rng = np.random.default_rng(seed)
        yield 0.0
        total, left = 0.0, n - 1
        while left > 0:
            k = min(BLOCK, left)
            sums = np.cumsum(np.concatenate(([total], draw(rng, k))))[1:]
            yield from sums.tolist()
            total = float(sums[-1])
            left -= k

    return Offsets(n, stream)


@dataclass
class Arrival:
    mode: str  # "open" (precomputed offsets) | "batch" | "closed"
    offsets: Iterable[float] | None  # open: absolute offsets (s) from run start, n, first = 0
    batch_size: int | None  # batch mode
    concurrency: int | None  # closed mode (also caps in-flight requests in open mode if set)
    # resumed open loop: the k-th plan still to send takes the k-th slot from the first
    # one's (see resume.continue_arrival), instead of its own index's slot
    compact: bool = False


@dataclass(frozen=True)
class ArrivalArgs:
    """The flags of ``make_arrival``, passed whole to each process."""

    name: str
    n: int
    rate: float | None = None
    cv: float | None = None
    shape: float | None = None
    batch_size: int | None = None
    concurrency: int | None = None
    trace_file: str | None = None
    seed: int = 0


ArrivalFactory = Callable[[ArrivalArgs], Arrival]

ARRIVALS: Registry[ArrivalFactory] = Registry("arrival")

# The flag each ArrivalArgs field comes from, for messages.
FLAGS = {
    "rate": "--rate",
    "cv": "--cv",
    "shape": "--shape",
    "batch_size": "--batch-size",
    "concurrency": "--concurrency",
    "trace_file": "--trace-file",
}


def make_arrival(
    name: str,
    n: int,
    *,
    rate: float | None = None,
    cv: float | None = None,
    shape: float | None = None,
    batch_size: int | None = None,
    concurrency: int | None = None,
    trace_file: str | None = None,
    seed: int = 0,
) -> Arrival:
    """The arrival process ``name`` for ``n`` requests; unused flags are an error."""
    factory = ARRIVALS.get(name)
    if n < 1:
        raise UsageError(f"the number of requests must be >= 1 (got {n})")
    args = ArrivalArgs(name, n, rate, cv, shape, batch_size, concurrency, trace_file, seed)
    if concurrency is not None:
        _positive_int("concurrency", concurrency)
    return factory(args)


# ----------------------------------------------------------------- validation helpers


def _only(args: ArrivalArgs, *used: str) -> None:
    """Reject flags the process ignores, so a typo'd setup does not run silently."""
    for key, flag in FLAGS.items():
        if key in used or key == "concurrency":
            continue
        if getattr(args, key) is not None:
            raise UsageError(f"{flag} does not apply to arrival {args.name!r}; drop it")


def _need(args: ArrivalArgs, key: str) -> Any:
    value = getattr(args, key)
    if value is None:
        raise UsageError(f"arrival {args.name!r} needs {FLAGS[key]}")
    return value


def _positive(key: str, value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise UsageError(f"{FLAGS[key]} must be > 0 (got {value})")
    return float(value)


def _positive_int(key: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{FLAGS[key]} must be an integer >= 1 (got {value})")
    return value


def _open(draw: Callable[[np.random.Generator, int], np.ndarray], args: ArrivalArgs) -> Arrival:
    """Offsets from n-1 gaps ``draw(rng, k)``: 0, g0, g0+g1, ... (streamed)."""
    return Arrival("open", _cumulative(args.n, draw, args.seed), None, args.concurrency)


# ----------------------------------------------------------------- closed loop


@ARRIVALS.register("batch")
def batch(args: ArrivalArgs) -> Arrival:
    """B requests at once; the next batch starts when the slowest of them ends."""
    _only(args, "batch_size")
    size = _positive_int("batch_size", int(_need(args, "batch_size")))
    if args.concurrency is not None:
        raise UsageError("--concurrency does not apply to arrival 'batch'; use --batch-size")
    return Arrival("batch", None, size, None)


@ARRIVALS.register("concurrency")
def concurrency(args: ArrivalArgs) -> Arrival:
    """Closed loop: C requests in flight; each finished request releases the next."""
    _only(args)
    return Arrival("closed", None, None, int(_need(args, "concurrency")))


# ----------------------------------------------------------------- open loop


@ARRIVALS.register("poisson")
def poisson(args: ArrivalArgs) -> Arrival:
    """Exponential gaps with mean 1/rate (memoryless arrivals, gap CV 1)."""
    _only(args, "rate")
    rate = _positive("rate", _need(args, "rate"))
    return _open(lambda rng, k: rng.exponential(1.0 / rate, size=k), args)


@ARRIVALS.register("gamma")
def gamma(args: ArrivalArgs) -> Arrival:
    """Gamma gaps with mean 1/rate and CV ``cv`` (shape = 1/cv^2, vLLM's "burstiness").

    cv > 1 is burstier than Poisson, cv < 1 more regular; cv = 1 is Poisson.
    """
    _only(args, "rate", "cv", "shape")
    rate = _positive("rate", _need(args, "rate"))
    if args.cv is not None and args.shape is not None:
        raise UsageError("arrival 'gamma' takes --cv or --shape, not both")
    if args.cv is not None:
        shape = 1.0 / _positive("cv", args.cv) ** 2
    elif args.shape is not None:
        shape = _positive("shape", args.shape)
    else:
        raise UsageError("arrival 'gamma' needs --cv (or --shape)")
    return _open(lambda rng, k: rng.gamma(shape, 1.0 / (rate * shape), size=k), args)


@ARRIVALS.register("constant")
def constant(args: ArrivalArgs) -> Arrival:
    """Evenly spaced: offset i is exactly i/rate (computed directly, not summed)."""
    _only(args, "rate")
    rate = _positive("rate", _need(args, "rate"))
    return Arrival("open", Offsets(args.n, lambda: (i / rate for i in itertools.count())), None,
                   args.concurrency)


@ARRIVALS.register("trace")
def trace(args: ArrivalArgs) -> Arrival:
    """Replay the first n times of a trace, shifted so the first is 0.

    The file is one number per line (blank lines and ``#`` comments skipped), or a
    JSONL/JSON/CSV/Parquet table with an ``offset`` or ``timestamp`` column (seconds).
    """
    _only(args, "trace_file")
    path = str(_need(args, "trace_file"))
    times = read_trace(path)
    if len(times) < args.n:
        raise UsageError(
            f"--trace-file '{path}' has {len(times)} arrivals but {args.n} requests are "
            "planned; lower the number of requests or use a longer trace"
        )
    first = times[0]
    return Arrival("open", [t - first for t in times[: args.n]], None, args.concurrency)


def read_trace(path: str) -> list[float]:
    """Arrival times of a trace file, checked to be finite and nondecreasing."""
    p = Path(path)
    if p.suffix.lower() in (".jsonl", ".ndjson", ".json", ".csv", ".parquet", ".pq"):
        rows = read_rows(p)
        column = next((c for c in ("offset", "timestamp") if c in rows[0]), None)
        if column is None:
            raise UsageError(
                f"--trace-file '{path}' needs an 'offset' or 'timestamp' column "
                f"(columns: {', '.join(rows[0])})"
            )
        raw = [(i + 1, r.get(column)) for i, r in enumerate(rows)]
        where = f"row {{}} ({column})"
    else:
        if not p.is_file():
            raise UsageError(f"--trace-file '{path}': no such file")
        try:
            lines = p.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--trace-file '{path}' cannot be read: {exc}") from None
        raw = [
            (i + 1, line.split("#", 1)[0].strip())
            for i, line in enumerate(lines)
            if line.split("#", 1)[0].strip()
        ]
        where = "line {}"
    times: list[float] = []
    for lineno, value in raw:
        try:
            t = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            t = math.nan
        if not math.isfinite(t):
            loc = where.format(lineno)
            raise UsageError(f"--trace-file '{path}' {loc}: {_show(value)} is not a number")
        if times and t < times[-1]:
            loc = where.format(lineno)
            raise UsageError(
                f"--trace-file '{path}' {loc}: {t} comes before {times[-1]}; sort the trace"
            )
        times.append(t)
    if not times:
        raise UsageError(f"--trace-file '{path}' has no arrival times")
    return times


def _show(value: object) -> str:
    return orjson.dumps(value, default=str).decode()
