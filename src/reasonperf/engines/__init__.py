"""Engines: an external endpoint, or a server we launch (vLLM CPU/GPU, SGLang).

Importing this package registers every engine kind in ``ENGINES``.
"""

from reasonperf.engines import external, sglang, vllm  # noqa: F401  (registration)
from reasonperf.engines.base import ENGINES, Engine, LaunchedEngine, make_engine
from reasonperf.engines.external import ExternalEngine
from reasonperf.engines.models import (
    build_test_models,
    cache_dir,
    prepare_all,
    prepare_smollm2,
)
from reasonperf.engines.sglang import SglangEngine
from reasonperf.engines.spec import EngineSpec
from reasonperf.engines.vllm import VllmEngine

__all__ = [
    "ENGINES",
    "Engine",
    "EngineSpec",
    "ExternalEngine",
    "LaunchedEngine",
    "SglangEngine",
    "VllmEngine",
    "build_test_models",
    "cache_dir",
    "make_engine",
    "prepare_all",
    "prepare_smollm2",
]
