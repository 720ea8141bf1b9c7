"""SGLang's OpenAI-compatible server (`python -m sglang.launch_server`), launched by us.

EngineSpec speaks vLLM's vocabulary; this module translates it to SGLang's flags. A field
SGLang has no equivalent for is refused with a UsageError rather than silently dropped.
"""

from __future__ import annotations

from typing import Any

from reasonperf.engines.base import ENGINES, LaunchedEngine
from reasonperf.errors import UsageError

# vLLM reasoning-parser names -> SGLang's (which use hyphens).
_REASONING_PARSERS = {
    "deepseek_r1": "deepseek-r1",
    "deepseek_v3": "deepseek-v3",
    "gpt_oss": "gpt-oss",
}

# vLLM speculative_config keys -> SGLang flags; SGLang's own keys pass through.
_SPECULATIVE_KEYS = {
    "method": "--speculative-algorithm",
    "model": "--speculative-draft-model-path",
    "num_speculative_tokens": "--speculative-num-steps",
}


def speculative_flags(config: dict[str, Any]) -> list[str]:
    """`--speculative-*` flags for a vLLM-style or SGLang-style speculative config.

    vLLM's num_speculative_tokens k becomes SGLang's chain of k draft steps (topk 1,
    k + 1 draft tokens, the verified token included) unless those are given explicitly.
    """
    flags: dict[str, str] = {}
    for key, value in config.items():
        flag = _SPECULATIVE_KEYS.get(key) or "--speculative-" + key.removeprefix(
            "speculative_"
        ).replace("_", "-")
        text = str(value).upper() if key in ("method", "algorithm") else str(value)
        flags[flag] = text
    if "num_speculative_tokens" in config:
        steps = int(config["num_speculative_tokens"])
        flags.setdefault("--speculative-eagle-topk", "1")
        flags.setdefault("--speculative-num-draft-tokens", str(steps + 1))
    return [item for pair in flags.items() for item in pair]


@ENGINES.register("sglang")
class SglangEngine(LaunchedEngine):
    kind = "sglang"
    module = "sglang.launch_server"
    dist_names = ("sglang",)
    owned_flags = ("--model-path", "--model", "--served-model-name", "--host", "--port")
    prefix_cache_reset_path = "/flush_cache"

    eager_flag = "--disable-cuda-graph"
    cpu_target_label = "--device cpu"
    gpu_dtype_reason = "GPU: SGLang's auto (the model's dtype)"

    def targets_cpu(self) -> bool:
        """SGLang runs on the CPU only when asked with --device cpu (its default is cuda)."""
        return self.user_flag("--device") == "cpu"

    def build_args(self, port: int) -> list[str]:
        s = self.spec
        if s.num_gpu_blocks_override is not None:
            raise UsageError(
                "engine.num_gpu_blocks_override is vLLM-only; for sglang pass "
                "extra_args ['--max-total-tokens', 'N'] to cap the KV cache"
            )
        args = ["--model-path", self.model, "--served-model-name", self.served_model]
        args += ["--host", s.host, "--port", str(port)]
        chosen = self.choices()
        if chosen["dtype"]["reason"] != "engine.extra_args" and chosen["dtype"]["value"] != "auto":
            args += ["--dtype", chosen["dtype"]["value"]]
        parser = None
        if s.reasoning_parser is not None:
            parser = _REASONING_PARSERS.get(s.reasoning_parser, s.reasoning_parser)
        optional: list[tuple[str, object]] = [
            ("--context-length", s.max_model_len),
            ("--max-running-requests", s.max_num_seqs),
            ("--mem-fraction-static", s.gpu_memory_utilization),
            ("--quantization", s.quantization),
            ("--kv-cache-dtype", s.kv_cache_dtype),
            ("--reasoning-parser", parser),
        ]
        args += [item for flag, value in optional if value is not None for item in (flag, str(value))]
        if s.enable_prefix_caching is False:
            args.append("--disable-radix-cache")  # SGLang's radix cache is on by default
        if s.speculative_config:
            args += speculative_flags(s.speculative_config)
        if chosen["enforce_eager"]["value"] and chosen["enforce_eager"]["reason"] != "engine.extra_args":
            args.append("--disable-cuda-graph")
        if self.user_flag("--enable-metrics") is None:
            args.append("--enable-metrics")  # /metrics, which telemetry scrapes, is off by default
        return args
