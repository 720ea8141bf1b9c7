"""Hardware and model profiles: a roofline prior for the step-time model when no run exists.

GPU datasheet numbers (dense BF16, no sparsity) and BLIS's MFU calibration; model shapes
from a Hugging Face ``config.json``. The prior is the linear step model with

    c_step    = weights / bandwidth (+ a fixed per-step overhead)
    c_kv      = KV bytes per token / bandwidth (x 0.5..1 for an FP8 KV cache)
    c_prefill = 2 * linear params / (peak FLOPS * MFU_prefill)
    c_attn    = 4 * layers * heads * head_dim / (peak FLOPS * MFU_prefill)
    c_decode  = 2 * linear params / (peak FLOPS * MFU_decode)  (compute of a decode token)

Summed rather than maxed (the BLIS trained-physics form), so a fitted run replaces it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from reasonperf.errors import UsageError
from reasonperf.sim.steptime import LinearStepTime


@dataclass(frozen=True)
class Hardware:
    name: str
    bf16_tflops: float
    hbm_tb_s: float
    memory_gb: float
    mfu_prefill: float
    mfu_decode: float


HARDWARE: dict[str, Hardware] = {
    h.name: h
    for h in (
        Hardware("a100-80gb", 312.0, 2.039, 80, 0.38, 0.18),
        Hardware("h100", 989.0, 3.35, 80, 0.45, 0.30),
        Hardware("h200", 989.0, 4.8, 141, 0.45, 0.30),  # same die as H100; MFU assumed
        Hardware("l40s", 362.0, 0.864, 48, 0.32, 0.08),
    )
}

STEP_OVERHEAD_S = 126e-6  # BLIS beta7: fixed per-step overhead
SEQ_OVERHEAD_S = 4.42e-6  # BLIS beta6: per-request overhead


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int

    @classmethod
    def from_config(cls, path: str | Path) -> ModelShape:
        p = Path(path)
        if p.is_dir():
            p = p / "config.json"
        try:
            cfg = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UsageError(f"--model-config {p}: cannot read a HF config.json ({err})") from None
        try:
            heads = int(cfg["num_attention_heads"])
            hidden = int(cfg["hidden_size"])
            return cls(
                layers=int(cfg["num_hidden_layers"]),
                hidden=hidden,
                heads=heads,
                kv_heads=int(cfg.get("num_key_value_heads", heads)),
                head_dim=int(cfg.get("head_dim") or hidden // heads),
                intermediate=int(cfg["intermediate_size"]),
                vocab=int(cfg.get("vocab_size", 0)),
            )
        except KeyError as err:
            raise UsageError(f"--model-config {p}: missing {err.args[0]}") from None

    @property
    def linear_params(self) -> int:
        """Weights touched per token (attention projections + SwiGLU MLP), all layers."""
        h, d = self.hidden, self.head_dim
        per_layer = h * self.heads * d + 2 * h * self.kv_heads * d + self.heads * d * h
        return self.layers * (per_layer + 3 * h * self.intermediate)

    @property
    def params(self) -> int:
        return self.linear_params + 2 * self.vocab * self.hidden

    def kv_bytes_per_token(self, kv_bytes: float = 2.0) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * kv_bytes


def roofline_prior(hw: Hardware, shape: ModelShape, *, weight_bytes: float = 2.0,
                   kv_dtype: str = "auto", tp: int = 1) -> LinearStepTime:
    """The step-time model from datasheet numbers alone (no measured run)."""
    bw = hw.hbm_tb_s * 1e12 * tp
    flops = hw.bf16_tflops * 1e12 * tp
    kv_bytes = 1.0 if kv_dtype.startswith("fp8") else 2.0
    return LinearStepTime(
        c_step=shape.params * weight_bytes / bw + STEP_OVERHEAD_S,
        c_seq=SEQ_OVERHEAD_S,
        c_decode=2 * shape.linear_params / (flops * hw.mfu_decode),
        c_kv=shape.kv_bytes_per_token(kv_bytes) / bw,
        c_prefill=2 * shape.linear_params / (flops * hw.mfu_prefill),
        c_attn=4 * shape.layers * shape.heads * shape.head_dim / (flops * hw.mfu_prefill),
    )


def hardware(name: str) -> Hardware:
    try:
        return HARDWARE[name.lower()]
    except KeyError:
        raise UsageError(f"--gpu {name!r} is unknown; choose one of: "
                         f"{', '.join(sorted(HARDWARE))}") from None


def kv_capacity_tokens(hw: Hardware, shape: ModelShape, *, gpu_memory_utilization: float = 0.9,
                       kv_dtype: str = "auto", tp: int = 1, activation_gib: float = 5.5) -> int:
    """BLIS's capacity formula, for when no measured run says better."""
    gib = 1024**3
    mem = hw.memory_gb * 1e9 * gpu_memory_utilization * tp
    free = mem - shape.params * 2 - activation_gib * gib - (0.15 if tp == 1 else 0.6) * gib
    kvb = shape.kv_bytes_per_token(1.0 if kv_dtype.startswith("fp8") else 2.0)
    return max(0, int(free / kvb))
