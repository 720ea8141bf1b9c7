"""Scheduling policies: one simulator per engine policy, behind a registry.

``vllm-v1`` is the event-driven core (core.py). A second engine's policy (SGLang's
conservative admission with retraction) is a new module registering here; the CLI picks
one with ``--policy``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reasonperf.registry import Registry
from reasonperf.sim.core import simulate
from reasonperf.sim.model import EngineConfig, SimRequest, SimResult
from reasonperf.sim.steptime import LinearStepTime

Simulator = Callable[[Sequence[SimRequest], EngineConfig, LinearStepTime, "float | None"],
                     SimResult]

POLICIES: Registry[Simulator] = Registry("scheduler policy")


@POLICIES.register("vllm-v1")
def vllm_v1(requests: Sequence[SimRequest], cfg: EngineConfig, model: LinearStepTime,
            sample_interval_s: float | None = None) -> SimResult:
    return simulate(requests, cfg, model, sample_interval_s)
