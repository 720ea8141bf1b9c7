"""Inputs and outputs of one simulation: the requests, the engine's settings, the result."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class SimRequest:
    """One request as the engine sees it: when it arrives and how many tokens it has.

    ``reasoning_tokens`` of the ``output_tokens`` are thinking; the first visible token is
    token ``reasoning_tokens + 1`` (None when the reply is all thinking).
    """

    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    reasoning_tokens: int = 0
    max_tokens: int | None = None  # what was asked; SGLang's admission reserves for it


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The scheduler's settings (vLLM names). ``kv_blocks`` x ``block_size`` is the KV
    cache in tokens; the vLLM CPU backend uses 128-token blocks, GPUs 16."""

    kv_blocks: int
    block_size: int = 16
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    num_speculative_tokens: int = 0  # k drafts per decode step; 0 = off
    acceptance: float = 0.0  # mean per-position acceptance rate of a draft
    acceptance_concentration: float = 20.0  # Beta(a*kappa, (1-a)*kappa) per request
    seed: int = 0

    def validate(self) -> None:
        if self.kv_blocks < 1 or self.block_size < 1:
            raise ValueError("kv_blocks and block_size must be >= 1")
        if self.max_num_seqs < 1:
            raise ValueError("max_num_seqs must be >= 1")
        if self.max_num_batched_tokens < self.max_num_seqs * (1 + self.num_speculative_tokens):
            # vLLM asserts max_num_batched_tokens >= max_num_seqs: every running request
            # gets its decode token in every step.
            raise ValueError("max_num_batched_tokens must be >= max_num_seqs x (1 + k drafts)")
        if not 0.0 <= self.acceptance < 1.0:
            raise ValueError("acceptance must be in [0, 1)")


@dataclass(slots=True)
class SimResult:
    """Per request (in the order given): times in seconds on the simulated clock."""

    first_token_s: np.ndarray
    first_visible_s: np.ndarray  # NaN when the reply has no visible token
    done_s: np.ndarray
    preemptions: np.ndarray  # times each request was preempted
    steps: int  # engine steps taken
    total_preemptions: int
    busy_steps_tokens: int = 0  # tokens scheduled over all steps
    samples: list[tuple[float, int, int, float, int]] = field(default_factory=list)
    """(t_s, running, waiting, kv_usage 0..1, preemptions so far) at each sampler tick."""

    @property
    def makespan_s(self) -> float:
        return float(np.nanmax(self.done_s)) if len(self.done_s) else 0.0
