"""Step-time models: how long one engine step takes, from what the step carries.

The physics-shaped linear model (the BLIS "trained physics" form, summed rather than
maxed so a decode run stays affine in the step index and has a closed form)::

    t = c_step                      weights read once per step + fixed per-step overhead
      + c_seq     * sequences       per-sequence overhead (sampling, bookkeeping)
      + c_decode  * decode tokens   per decoded (or verified draft) token compute
      + c_kv      * sum of contexts KV read of the decoding sequences
      + c_prefill * prefill tokens  weight GEMMs of prefill chunks
      + c_attn    * prefill pairs   attention of a chunk of n at context c: n*(c+(n+1)/2)

All coefficients are seconds per unit and non-negative.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from reasonperf.errors import UsageError
from reasonperf.registry import Registry

STEP_TIME_MODELS: Registry[type[LinearStepTime]] = Registry("step-time model")

FEATURES = ("step", "seqs", "decode_tokens", "kv_tokens", "prefill_tokens", "prefill_attn")


@STEP_TIME_MODELS.register("linear")
@dataclass(frozen=True, slots=True)
class LinearStepTime:
    c_step: float = 0.0
    c_seq: float = 0.0
    c_decode: float = 0.0
    c_kv: float = 0.0
    c_prefill: float = 0.0
    c_attn: float = 0.0

    kind: ClassVar[str] = "linear"

    def step_time(
        self, seqs: int, decode_tokens: int, kv_tokens: int, prefill_tokens: int,
        prefill_attn: float,
    ) -> float:
        return (
            self.c_step
            + self.c_seq * seqs
            + self.c_decode * decode_tokens
            + self.c_kv * kv_tokens
            + self.c_prefill * prefill_tokens
            + self.c_attn * prefill_attn
        )

    def decode_run(self, batch: int, kv_tokens: int) -> tuple[float, float]:
        """(alpha, beta) of a decode-only run: step k of the run takes alpha + beta*k,
        because every sequence's context grows by one token a step."""
        alpha = self.step_time(batch, batch, kv_tokens, 0, 0.0)
        return alpha, self.c_kv * batch

    def scaled(self, kv_read_factor: float = 1.0) -> LinearStepTime:
        """The same model with the KV-read term scaled (FP8 KV: a fitted factor in [0.5, 1])."""
        d = asdict(self)
        d["c_kv"] *= kv_read_factor
        return LinearStepTime(**d)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearStepTime:
        known = {f.name for f in fields(cls)}
        values = {k: float(v) for k, v in data.items() if k in known}
        bad = [k for k, v in values.items() if not v >= 0.0]
        if bad:
            raise UsageError(f"step-time coefficient {bad[0]} must be >= 0; recalibrate")
        return cls(**values)


def step_model_from_dict(data: dict[str, Any]) -> LinearStepTime:
    kind = str(data.get("kind", "linear"))
    return STEP_TIME_MODELS.get(kind).from_dict(data)
