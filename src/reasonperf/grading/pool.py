"""Run a grading function over many items in worker processes, each under a time limit.

Why a process pool: math-verify bounds its own work with ``signal.alarm``, which only
works in a main thread, and sympy can still run away on adversarial answers. Each worker
runs items in its own main thread under one SIGALRM timer per item (math-verify's own
timers are switched off by the caller so they cannot cancel ours). A worker stuck in C
code where the alarm cannot reach it is caught by a second, outer guard: its item is
counted as timed out, the pool is killed and the remaining items go to a fresh pool.

Workers are started with the "spawn" method: safe when the caller has threads (the
asyncio runner, aiohttp) and the same on every platform. ``fn`` must therefore be a
module-level function importable by name.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

OK = "ok"
TIMEOUT = "timeout"
ERROR = "error"

Outcome = tuple[str, Any]  # (OK | TIMEOUT | ERROR, value or error text)

# Seconds allowed on top of the per-item limit before the outer guard gives up on a
# worker: covers spawning the process and importing sympy on a busy machine.
STARTUP_ALLOWANCE_S = 60.0


class _ItemTimeout(BaseException):
    """Raised by our SIGALRM handler. A BaseException so that the many
    ``except Exception`` blocks inside math-verify and sympy cannot swallow it."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _ItemTimeout


def call_with_timeout(
    fn: Callable[..., Any], args: Sequence[Any], timeout_s: float | None
) -> Outcome:
    """Call ``fn(*args)`` under a SIGALRM timer when we are in a main thread on POSIX.

    Elsewhere (a non-main thread, Windows) the call runs without a limit.
    """
    use_alarm = (
        timeout_s is not None
        and timeout_s > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not use_alarm or timeout_s is None:  # the None test narrows for the type checker
        try:
            return OK, fn(*args)
        except Exception as exc:  # reported as the item's outcome
            return ERROR, f"{type(exc).__name__}: {exc}"
    old = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            return OK, fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _ItemTimeout:
        return TIMEOUT, None
    except Exception as exc:
        return ERROR, f"{type(exc).__name__}: {exc}"
    finally:
        signal.signal(signal.SIGALRM, old)


def _kill(executor: ProcessPoolExecutor) -> None:
    """Terminate the workers of a pool that has a stuck item, then drop the pool.

    ``shutdown`` alone would wait for the stuck worker forever; Python 3.11 has no public
    way to terminate workers (3.14 adds ``terminate_workers``), hence ``_processes``.
    """
    procs = dict(getattr(executor, "_processes", None) or {})
    for proc in procs.values():
        if proc.is_alive():
            proc.terminate()
    executor.shutdown(wait=False, cancel_futures=True)
    for proc in procs.values():
        proc.join(timeout=5)
        if proc.is_alive():
            proc.kill()


def map_isolated(
    fn: Callable[..., Any],
    items: Sequence[Sequence[Any]],
    *,
    workers: int = 2,
    timeout_s: float | None = 10.0,
    guard_s: float | None = None,
) -> list[Outcome]:
    """``[call_with_timeout(fn, item, timeout_s) for item in items]``, in worker processes.

    Results keep the order of ``items``. ``workers <= 0`` runs everything in this process
    (with the alarm only when this is the main thread). ``guard_s`` is the outer limit on
    one item, counted from when its predecessors are done (default: twice ``timeout_s``
    plus STARTUP_ALLOWANCE_S).
    """
    if workers <= 0 or not items:
        return [call_with_timeout(fn, item, timeout_s) for item in items]
    results: list[Outcome | None] = [None] * len(items)
    todo = list(range(len(items)))
    guard = guard_s
    if guard is None and timeout_s is not None:
        guard = 2 * timeout_s + STARTUP_ALLOWANCE_S
    ctx = multiprocessing.get_context("spawn")
    while todo:
        executor = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx)
        futures: dict[int, Future[Outcome]] = {
            i: executor.submit(call_with_timeout, fn, items[i], timeout_s) for i in todo
        }
        failed: int | None = None
        failure: Outcome = (TIMEOUT, None)
        for i in todo:
            try:
                results[i] = futures[i].result(timeout=guard)
            except FutureTimeout:
                failed, failure = i, (TIMEOUT, None)
                break
            except BrokenProcessPool as exc:
                failed, failure = i, (ERROR, f"worker died: {exc}")
                break
        if failed is None:
            executor.shutdown(wait=True)
            break
        if failure[0] == ERROR and all(results[i] is None for i in todo[: todo.index(failed)]):
            _kill(executor)
            raise RuntimeError(
                "grading pool workers died before finishing any item; when grading from a "
                "script, guard its entry point with `if __name__ == '__main__':`"
            )
        results[failed] = failure
        for i in todo:
            fut = futures[i]
            if (
                results[i] is None
                and fut.done()
                and not fut.cancelled()
                and fut.exception() is None
            ):
                results[i] = fut.result()
        _kill(executor)
        todo = [i for i in todo if results[i] is None]
    return [r if r is not None else (ERROR, "not run") for r in results]
