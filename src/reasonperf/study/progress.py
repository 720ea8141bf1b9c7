"""One live display for a whole study: cells done / running / failed, the current cell,
engine starts and an ETA from the cells finished so far.

The current cell's own request progress (``client.progress.LiveProgress``) is a nested
rich Live on the same console, so it shows below this panel while the cell runs. A line
per finished cell is printed above the display, which also leaves a plain log when the
console is not a terminal.
"""

from __future__ import annotations

import time
from statistics import mean
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from reasonperf.redact import redact_text

STYLES = {"ok": "green", "failed": "red", "skipped": "yellow", "partial": "yellow"}


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class StudyProgress:
    """Counts and timings of one study session, rendered live on ``console``."""

    def __init__(self, name: str, total: int, console: Console, *, done: int = 0,
                 skipped: int = 0, engines_left: int = 0) -> None:
        self.name = name
        self.total = total
        self.console = console
        self.done = done  # finished ok, this session or before
        self.failed = 0
        self.skipped = skipped
        self.engine_starts = 0
        self.engines_left = engines_left  # engine starts still expected
        self.current: str | None = None
        self.activity = ""
        self._cell_walls: list[float] = []
        self._start_walls: list[float] = []
        self._t0 = time.monotonic()
        self._live = Live(console=console, get_renderable=self._render, refresh_per_second=2,
                          transient=False)

    def __enter__(self) -> StudyProgress:
        self._live.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.current = None
        self.activity = "finished" if et is None else "stopped"
        self._live.__exit__(et, ev, tb)

    # --- events ----------------------------------------------------------------------
    def engine_starting(self, group: str, label: str) -> None:
        self.activity = f"starting engine {group} ({label})"

    def engine_started(self, seconds: float) -> None:
        self.engine_starts += 1
        self.engines_left = max(0, self.engines_left - 1)
        self._start_walls.append(seconds)
        self.activity = f"engine up in {seconds:.0f} s"

    def engine_failed(self, group: str, error: str) -> None:
        self.engines_left = max(0, self.engines_left - 1)
        error = redact_text(error)
        short = error if len(error) <= 300 else error[:300] + " ..."
        self.console.print(Text(f"engine {group} failed to start: {short}", style="red"))

    def cell_started(self, cell_id: str, resumed: bool) -> None:
        self.current = cell_id
        self.activity = "resuming" if resumed else "running"

    def cell_finished(self, cell_id: str, status: str, wall_s: float | None,
                      note: str = "") -> None:
        if status == "ok":
            self.done += 1
        elif status == "failed":
            self.failed += 1
        elif status == "skipped":
            self.skipped += 1
        if wall_s is not None and status == "ok":
            self._cell_walls.append(wall_s)
        self.current = None
        self.activity = ""
        took = f" in {wall_s:.1f} s" if wall_s is not None else ""
        line = Text(f"{status:>7} ", style=STYLES.get(status, ""))
        line.append(f"{cell_id}{took}")
        if note:
            line.append(f"  {redact_text(note)}", style="dim")
        self.console.print(line)

    # --- rendering -------------------------------------------------------------------
    @property
    def remaining(self) -> int:
        running = 1 if self.current else 0
        return max(0, self.total - self.done - self.failed - self.skipped - running)

    def eta_s(self) -> float | None:
        """Mean wall time of this session's finished cells times the cells left, plus the
        engine starts still to come at their mean start time."""
        if not self._cell_walls:
            return None
        left = self.remaining + (1 if self.current else 0)
        starts = mean(self._start_walls) * self.engines_left if self._start_walls else 0.0
        return mean(self._cell_walls) * left + starts

    def _render(self) -> RenderableType:
        elapsed = time.monotonic() - self._t0
        head = Text(f"study {self.name}", style="bold")
        head.append(f" · {self.total} cells: ")
        head.append(f"{self.done} done", style="green")
        head.append(f" · {1 if self.current else 0} running · ")
        head.append(f"{self.failed} failed", style="red" if self.failed else "")
        head.append(f" · {self.skipped} skipped · {self.remaining} to go")
        head.append(f" · engine starts {self.engine_starts}")
        head.append(f" · elapsed {_clock(elapsed)} · ETA {_clock(self.eta_s())}")
        now = Text("now: ", style="dim")
        now.append(self.current or "-")
        if self.activity:
            now.append(f" ({self.activity})", style="dim")
        return Group(head, now)
