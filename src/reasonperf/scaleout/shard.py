"""One shard of a sharded run: its slice of the plans and of the closed-loop width, and
when to start.

A shard runs the ordinary run loop (run.execute_run) on its slice: request indices
``i, i+n, ...`` of the one global sequence, with their offsets from the one global
schedule, from a common start time T0 (Unix seconds on the coordinator's clock). The
shard converts T0 to its own clock with its measured offset once, then waits on its own
monotonic clock; every duration it records comes from that one clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any

from reasonperf.errors import UsageError
from reasonperf.scaleout.clock import answer_pings, wall_clock
from reasonperf.workload.arrivals import Arrival

READY = "ready"
START = "start"


def split_width(width: int, index: int, count: int) -> int:
    """Shard ``index``'s part of a width dealt over ``count`` shards (remainder first)."""
    return width // count + (1 if index < width % count else 0)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/N"`` -> (i, N), 0 <= i < N."""
    head, _, tail = text.partition("/")
    if not (head.isdigit() and tail.isdigit()) or not 0 <= int(head) < int(tail):
        raise UsageError(f"--shard must be I/N with 0 <= I < N (e.g. 0/2), got {text!r}")
    return int(head), int(tail)


@dataclass
class ShardContext:
    """What execute_run needs to run as shard ``index`` of ``count``.

    ``conn``: the pipe to the local coordinator (``--workers``), which measures the clock
    offset and sends T0 once every shard is ready. Without it (``--shard i/N --t0 EPOCH``,
    started by hand), T0 is taken on this host's clock and the offset is unknown.
    """

    index: int
    count: int
    run_id: str
    t0_unix: float | None = None
    conn: Connection | None = None
    skew_s: float = 0.0  # tests: this shard's wall clock runs this much ahead
    offset: dict[str, Any] | None = field(default=None)  # set when the coordinator sends T0

    @property
    def wall(self) -> Callable[[], float]:
        return wall_clock(self.skew_s)

    @property
    def slice(self) -> tuple[int, int]:
        return self.index, self.count

    def split(self, arrival: Arrival) -> Arrival:
        """This shard's arrival: the same offsets (sliced by Plans), a share of the
        closed-loop concurrency, batch size and open-loop cap."""
        def part(width: int | None, flag: str) -> int | None:
            if width is None:
                return None
            share = split_width(width, self.index, self.count)
            if share < 1:
                raise UsageError(f"{flag} {width} cannot be split over {self.count} workers; "
                                 f"use at most {width} workers")
            return share
        return replace(arrival, concurrency=part(arrival.concurrency, "--concurrency"),
                       batch_size=part(arrival.batch_size, "--batch-size"))

    async def start_s(self, clock: Callable[[], float]) -> float:
        """T0 on this shard's run clock: from the coordinator (after saying ready and
        answering its pings), else from ``--t0`` on this host's clock."""
        if self.conn is not None:
            t0, offset = await asyncio.to_thread(self._handshake)
            self.t0_unix, self.offset = t0, offset
            local_t0 = t0 + offset["offset_s"]
        else:
            assert self.t0_unix is not None
            local_t0 = self.t0_unix
        start = clock() + (local_t0 - self.wall())
        if start < clock():
            raise UsageError(f"shard {self.index}/{self.count}: T0 passed "
                             f"{clock() - start:.1f} s before this shard was ready; pick a "
                             "--t0 after every shard has started (e.g. now + 60)")
        return start

    def _handshake(self) -> tuple[float, dict[str, Any]]:
        assert self.conn is not None
        self.conn.send(READY)
        msg = answer_pings(self.conn, self.wall)
        kind, t0, offset = msg
        assert kind == START, msg
        return t0, offset

    def describe(self) -> dict[str, Any]:
        return {"index": self.index, "count": self.count, "run_id": self.run_id,
                "t0_unix": self.t0_unix, "offset_start": self.offset,
                "coordinated": self.conn is not None}
