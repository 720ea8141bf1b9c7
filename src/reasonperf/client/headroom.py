"""Headroom self-check: did the client, not the server, limit the measurement?

While a run sends, a small periodic task measures two things about the client itself:

- **event-loop lag**: the task asks to wake every ``interval_s`` and records how late it
  actually woke (actual - scheduled, on the monotonic clock). A loop that is busy parsing
  chunks, or a process the OS does not schedule, wakes late; every dispatch and every
  chunk timestamp of the run is then late by about as much.
- **CPU share**: the process's CPU time (all threads, ``time.process_time``) per second
  of wall time, sampled once a second. One Python event loop cannot use more than one
  core; near a full core it queues work, and the lag above follows.

Rule for the warning (``LAG_P99_LIMIT_S``, ``CPU_SHARE_LIMIT``): loop lag p99 above 5 ms,
or a CPU share above 80 % of a core (the whole-run share or the p90 of the per-second
samples, whichever is higher). Workers needed = ceil(share / ``WORKER_TARGET_SHARE``):
each worker kept at or below 60 % of a core leaves room for bursts. When the lag is
high but the CPU share is not, the client was starved by something else on its core,
and more workers help only on free cores; the warning says so.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LAG_P99_LIMIT_S = 0.005
CPU_SHARE_LIMIT = 0.80
WORKER_TARGET_SHARE = 0.60


@dataclass
class HeadroomMonitor:
    """Run ``run(stop)`` as a task next to the load; read ``summary()`` afterwards."""

    interval_s: float = 0.010
    cpu_every_s: float = 1.0
    lags: list[float] = field(default_factory=list)
    cpu_shares: list[float] = field(default_factory=list)
    _wall0: float | None = None
    _cpu0: float | None = None
    _wall1: float | None = None
    _cpu1: float | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set (or the task is cancelled)."""
        wall0 = time.perf_counter()
        cpu0 = time.process_time()
        self._wall0, self._cpu0 = wall0, cpu0
        mark_wall, mark_cpu = wall0, cpu0
        try:
            while not stop.is_set():
                due = time.perf_counter() + self.interval_s
                await asyncio.sleep(self.interval_s)
                now = time.perf_counter()
                self.lags.append(max(now - due, 0.0))
                if now - mark_wall >= self.cpu_every_s:
                    cpu = time.process_time()
                    self.cpu_shares.append((cpu - mark_cpu) / (now - mark_wall))
                    mark_wall, mark_cpu = now, cpu
        finally:
            self._wall1, self._cpu1 = time.perf_counter(), time.process_time()

    def summary(self) -> dict[str, Any]:
        """The ``client`` section: loop lag (ms) and CPU share (fraction of one core)."""
        lags = np.asarray(self.lags) * 1e3
        shares = np.asarray(self.cpu_shares)
        overall = None
        if None not in (self._wall0, self._wall1, self._cpu0, self._cpu1):
            span = self._wall1 - self._wall0  # type: ignore[operator]
            if span > 0:
                overall = (self._cpu1 - self._cpu0) / span  # type: ignore[operator]
        return {
            "loop_lag_ms": _quantiles(lags, self.interval_s * 1e3),
            "cpu_share": {
                "overall": _round(overall),
                "p50": _round(float(np.percentile(shares, 50))) if len(shares) else None,
                "p90": _round(float(np.percentile(shares, 90))) if len(shares) else None,
                "max": _round(float(shares.max())) if len(shares) else None,
                "seconds": len(shares),
            },
            "limits": {"loop_lag_p99_ms": LAG_P99_LIMIT_S * 1e3,
                       "cpu_share": CPU_SHARE_LIMIT,
                       "worker_target_share": WORKER_TARGET_SHARE},
        }


def _quantiles(values: np.ndarray, interval_ms: float) -> dict[str, Any]:
    if not len(values):
        return {"p50": None, "p99": None, "max": None, "samples": 0, "interval_ms": interval_ms}
    return {
        "p50": _round(float(np.percentile(values, 50))),
        "p99": _round(float(np.percentile(values, 99))),
        "max": _round(float(values.max())),
        "samples": int(len(values)),
        "interval_ms": interval_ms,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def peak_share(client: dict[str, Any]) -> float | None:
    """The CPU share the warning judges: the higher of the whole-run share and the p90
    of the per-second samples (None when nothing was measured)."""
    cpu = client.get("cpu_share") or {}
    known = [v for v in (cpu.get("overall"), cpu.get("p90")) if v is not None]
    return max(known) if known else None


def workers_needed(share: float) -> int:
    return max(1, math.ceil(share / WORKER_TARGET_SHARE))


def headroom_warning(client: dict[str, Any]) -> str | None:
    """One line when the client probably limited the measurement, else None."""
    lag = (client.get("loop_lag_ms") or {}).get("p99")
    share = peak_share(client)
    lag_high = lag is not None and lag > LAG_P99_LIMIT_S * 1e3
    cpu_high = share is not None and share > CPU_SHARE_LIMIT
    if not (lag_high or cpu_high):
        return None
    what = []
    if lag_high:
        what.append(f"event-loop lag p99 {lag:.1f} ms (limit {LAG_P99_LIMIT_S * 1e3:.0f} ms)")
    if cpu_high:
        what.append(f"CPU {share:.0%} of a core (limit {CPU_SHARE_LIMIT:.0%})")
    line = "client headroom: " + " and ".join(what) + "; the client may have limited the measurement"
    if cpu_high:
        assert share is not None
        n = workers_needed(share)
        line += (f" (dispatch and chunk times late); about {n} workers would be needed "
                 f"(ceil(CPU share / {WORKER_TARGET_SHARE:.0%}): --workers {n})")
    else:
        line += (" while its own CPU share was low: something else competed for its core; "
                 "free a core or run the client on another host")
    return line
