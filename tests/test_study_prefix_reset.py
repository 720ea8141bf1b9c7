"""Between study cells the engine's prefix cache is emptied, or the engine restarted when
it refuses; what was done is recorded. (The real vLLM check is in test_study_engine.py.)"""

from __future__ import annotations

from pathlib import Path

from reasonperf.engines import EngineSpec
from reasonperf.engines.base import PrefixCacheResetError
from reasonperf.study.runner import EngineSlots, clear_prefix_cache


class StubEngine:
    base_url = "http://127.0.0.1:1/v1"
    metrics_url = None
    served_model = "m"

    def __init__(self, spec: EngineSpec, refuse: bool = False) -> None:
        self.refuse = refuse
        self.resets = 0
        self.stopped = False

    def start(self, log_dir: Path | None = None) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True

    def reset_prefix_cache(self) -> str:
        if self.refuse:
            raise PrefixCacheResetError("vllm refused to reset its prefix cache: HTTP 404")
        self.resets += 1
        return "reset: POST /reset_prefix_cache"


def test_reused_engine_is_reset_fresh_one_is_not(tmp_path: Path) -> None:
    slots = EngineSlots(factory=StubEngine)
    spec = EngineSpec(model="/m")
    engine, started = slots.acquire(spec, tmp_path)
    assert clear_prefix_cache(slots, spec, engine, started, tmp_path) == (
        engine, "fresh engine: nothing cached")
    assert engine.resets == 0
    same, started = slots.acquire(spec, tmp_path)
    assert clear_prefix_cache(slots, spec, same, started, tmp_path) == (
        engine, "reset: POST /reset_prefix_cache")
    assert engine.resets == 1


def test_a_refused_reset_restarts_the_engine(tmp_path: Path) -> None:
    slots = EngineSlots(factory=lambda spec: StubEngine(spec, refuse=True))
    spec = EngineSpec(model="/m")
    old, _ = slots.acquire(spec, tmp_path)
    new, what = clear_prefix_cache(slots, spec, old, False, tmp_path)
    assert new is not old and old.stopped and not new.stopped
    assert what.startswith("restarted: the reset failed (vllm refused") and "404" in what
    assert slots.starts == 2
