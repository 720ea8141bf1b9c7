"""Session-scoped real-engine fixtures (vLLM CPU on the locally built tiny models).

An engine start costs 30-50 s here, so each engine starts at most once per session and
is stopped when the session ends. Tests using these fixtures should be marked
``@pytest.mark.engine``; they skip when vLLM is not installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from reasonperf.engines import EngineSpec, LaunchedEngine, build_test_models, make_engine


def _require_vllm() -> None:
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vLLM is not installed (pip install -e '.[engine]')")


@pytest.fixture(scope="session")
def engine_test_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """{"tiny-random": path, "tiny-reasoner": path}, built once per session (seconds)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_test_models(tmp_path_factory.mktemp("engine-models"))


def _serve(spec: EngineSpec, log_dir: Path) -> Iterator[LaunchedEngine]:
    engine = make_engine(spec)
    assert isinstance(engine, LaunchedEngine)
    engine.start(log_dir)
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def vllm_tiny_random(
    engine_test_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LaunchedEngine]:
    """A running vLLM CPU engine serving tiny-random (never emits EOS)."""
    _require_vllm()
    spec = EngineSpec(kind="vllm", model=str(engine_test_models["tiny-random"]),
                      max_model_len=4096)
    yield from _serve(spec, tmp_path_factory.mktemp("vllm-tiny-random"))


@pytest.fixture(scope="session")
def vllm_tiny_reasoner(
    engine_test_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LaunchedEngine]:
    """A running vLLM CPU engine serving tiny-reasoner with --reasoning-parser deepseek_r1."""
    _require_vllm()
    spec = EngineSpec(kind="vllm", model=str(engine_test_models["tiny-reasoner"]),
                      max_model_len=4096, reasoning_parser="deepseek_r1")
    yield from _serve(spec, tmp_path_factory.mktemp("vllm-tiny-reasoner"))
