"""Clock offset of a shard against the coordinator (Cristian / NTP style).

The coordinator stamps ``t1`` (its wall clock), asks the shard for its wall clock ``tw``
and stamps ``t2`` when the answer is back. If the two legs took equally long, the shard's
clock reads ``offset = tw - (t1 + t2) / 2`` ahead of the coordinator's; whatever the
legs took, the truth lies within ``rtt / 2`` of that (``rtt = t2 - t1``). Of several
exchanges the one with the smallest RTT gives the tightest bound. Offsets only place
records on one timeline; no duration is ever computed across two clocks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

PING = "ping"
SKEW_ENV = "REASONPERF_TEST_CLOCK_SKEW_S"  # tests: "SHARD:SECONDS,..." offsets a shard's wall clock
FLAG_OFFSET_S = 0.010  # |offset| above this is flagged (AIPerf's preflight uses 10 ms too)


def skew_for(index: int) -> float:
    """The injected wall-clock skew of shard ``index`` (tests only; 0 when unset)."""
    for part in filter(None, os.environ.get(SKEW_ENV, "").split(",")):
        shard, _, seconds = part.partition(":")
        if int(shard) == index:
            return float(seconds)
    return 0.0


def wall_clock(skew_s: float = 0.0) -> Callable[[], float]:
    """The shard's wall clock, in Unix seconds (offset by ``skew_s`` in tests)."""
    return lambda: time.time() + skew_s


def measure_offset(conn: Connection, samples: int = 16) -> dict[str, Any]:
    """Coordinator side: ``samples`` ping-pongs with a shard that answers with
    :func:`answer_pings`; returns the min-RTT estimate and its error bound (seconds)."""
    best: tuple[float, float] | None = None
    for _ in range(samples):
        t1 = time.time()
        conn.send(PING)
        tw = conn.recv()
        t2 = time.time()
        rtt = t2 - t1
        if best is None or rtt < best[0]:
            best = (rtt, tw - (t1 + t2) / 2)
    assert best is not None
    rtt, offset = best
    return {"offset_s": offset, "rtt_s": rtt, "bound_s": rtt / 2, "samples": samples,
            "measured_unix": time.time()}


def answer_pings(conn: Connection, wall: Callable[[], float]) -> Any:
    """Shard side: answer pings with ``wall()`` until another message comes; return it."""
    while True:
        msg = conn.recv()
        if msg != PING:
            return msg
        conn.send(wall())
