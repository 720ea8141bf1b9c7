"""Live progress of a run: sent / in flight / done / errors and output tok/s."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from reasonperf.records import RequestPlan, RequestRecord


class LiveProgress:
    def __init__(self, total: int, clock: Callable[[], float], console: Console | None = None) -> None:
        self.total = total
        self.clock = clock
        self.sent = self.done = self.errors = 0
        self.tokens = 0
        self._t_first: float | None = None
        self._progress = Progress(
            TextColumn("[bold]requests"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task = self._progress.add_task("run", total=total, stats="")

    def __enter__(self) -> LiveProgress:
        self._progress.__enter__()
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.__exit__(et, ev, tb)

    def _refresh(self) -> None:
        in_flight = self.sent - self.done
        elapsed = self.clock() - self._t_first if self._t_first is not None else 0.0
        tps = self.tokens / elapsed if elapsed > 0 else 0.0
        stats = f"sent {self.sent} · in flight {in_flight} · errors {self.errors} · {tps:,.0f} out tok/s"
        self._progress.update(self._task, completed=self.done, stats=stats)

    def on_sent(self, plan: RequestPlan) -> None:
        if self._t_first is None:
            self._t_first = self.clock()
        self.sent += 1
        self._refresh()

    def on_done(self, record: RequestRecord) -> None:
        self.done += 1
        if record.status != "ok":
            self.errors += 1
        self.tokens += record.completion_tokens or 0
        self._refresh()
