"""The engines of a study: one per engine group, started once, adopted or restarted when
it died, its prefix cache emptied between cells that share it (so no cell sees another's
cached prompts), and its start failures carried with the log tail."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from reasonperf.engines import Engine, make_engine
from reasonperf.engines.base import PrefixCacheResetError
from reasonperf.engines.process import log_tail
from reasonperf.engines.spec import EngineSpec
from reasonperf.study.expand import resolve_model

TAIL_LINES = 20




class EngineStartFailure(Exception):
    def __init__(self, message: str, tail: list[str]) -> None:
        super().__init__(message)
        self.tail = tail


def engine_alive(engine: Engine) -> bool:
    """A launched engine whose process exited is not alive; others are taken as alive."""
    return bool(getattr(engine, "started", True))


def engine_tail(engine: Engine | None) -> list[str]:
    path = getattr(engine, "log_path", None)
    return log_tail(Path(path), TAIL_LINES) if path else []


def _key(spec: EngineSpec) -> str:
    return orjson.dumps(spec.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()


@dataclass
class EngineSlots:
    """Starts the engine of each group and stops it when the group is done.

    ``keep=True`` keeps engines running across studies until ``close()`` (tests, or a
    notebook running several studies); ``adopt`` lends an engine someone else started
    for a spec (it is never stopped here). ``starts`` counts the engines started.
    """

    factory: Callable[[EngineSpec], Engine] = make_engine
    keep: bool = False
    starts: int = 0
    start_s: list[float] = field(default_factory=list)
    _running: dict[str, Engine] = field(default_factory=dict)
    _adopted: set[str] = field(default_factory=set)

    def adopt(self, spec: EngineSpec, engine: Engine) -> None:
        self._running[_key(spec)] = engine
        self._adopted.add(_key(spec))

    def acquire(self, spec: EngineSpec, log_dir: Path) -> tuple[Engine, bool]:
        """A running engine for ``spec`` (symbolic model names allowed) and whether it was
        started now. Raises EngineStartFailure with the log tail."""
        key = _key(spec)
        engine = self._running.get(key)
        if engine is not None and engine_alive(engine):
            return engine, False
        self.discard(spec)
        engine = None
        t0 = time.monotonic()
        try:
            resolved = spec.model_copy(update={"model": resolve_model(spec.model)})
            engine = self.factory(resolved)
            log_dir.mkdir(parents=True, exist_ok=True)
            engine.start(log_dir)
        except Exception as err:  # noqa: BLE001 - any start failure is recorded on the cells
            message = " ".join(str(err).split()) or type(err).__name__
            raise EngineStartFailure(message, engine_tail(engine)) from None
        self.starts += 1
        self.start_s.append(time.monotonic() - t0)
        self._running[key] = engine
        return engine, True

    def is_running(self, spec: EngineSpec) -> bool:
        engine = self._running.get(_key(spec))
        return engine is not None and engine_alive(engine)

    def release(self, spec: EngineSpec) -> None:
        if not self.keep:
            self.discard(spec)

    def discard(self, spec: EngineSpec) -> None:
        key = _key(spec)
        engine = self._running.pop(key, None)
        if key in self._adopted:
            self._adopted.discard(key)
            return
        if engine is not None:
            engine.stop()

    def close(self) -> None:
        for key in list(self._running):
            engine = self._running.pop(key)
            if key not in self._adopted:
                engine.stop()
        self._adopted.clear()


def clear_prefix_cache(slots: EngineSlots, spec: EngineSpec, engine: Engine, started: bool,
                       log_dir: Path) -> tuple[Engine, str]:
    """Empty the prefix cache of a reused engine so that a cell's prefills are not served
    from an earlier cell's prompts (a budget sweep sends the same prompts cell after cell).

    A reset the engine refuses becomes a restart. Returns the engine to use and what was
    done, in words, for cell.json.
    """
    if started:
        return engine, "fresh engine: nothing cached"
    reset = getattr(engine, "reset_prefix_cache", None)
    if not callable(reset):
        return engine, "not reset: the engine offers no prefix-cache reset"
    try:
        return engine, str(reset())
    except (PrefixCacheResetError, OSError) as err:
        why = " ".join(str(err).split())
    slots.discard(spec)
    engine, _ = slots.acquire(spec, log_dir)
    return engine, f"restarted: the reset failed ({why})"


