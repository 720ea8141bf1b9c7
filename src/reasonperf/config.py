"""Run configuration (pydantic): what one `reasonperf run` does.

CLI flags and YAML specs both become a ``RunSpec``; validation errors are turned into one
line naming the field (see ``spec_error_line``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reasonperf.engines.spec import EngineSpec
from reasonperf.errors import UsageError

SLO_METRICS = ("ttft", "ttfvt", "tpot", "e2e")


class WorkloadSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "procedural"  # registered name or a path to JSONL/CSV/Parquet
    data_file: str | None = None
    field_map: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)  # loader options (e.g. levels)
    limit: int | None = Field(default=None, ge=1)
    samples: int = Field(default=1, ge=1)
    prompt_style: str = "r1"
    prompt_template: str | None = None
    num_requests: int | None = Field(default=None, ge=1)  # None: every problem x samples


class ArrivalSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "batch"
    batch_size: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    rate: float | None = None
    cv: float | None = None
    shape: float | None = None
    trace_file: str | None = None


class SamplingSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(default=256, ge=1)
    temperature: float | None = Field(default=0.6, ge=0)
    top_p: float | None = Field(default=0.95, gt=0, le=1)
    # Send a per-request sampling seed (run seed + request index). Off by default: the
    # vLLM CPU build (0.32) crashes its engine ("CPU Generator does not use offset") when
    # a seeded request is in a chunked prefill, which any loaded run produces.
    request_seeds: bool = False
    # Thinking budget (issue 14): the engine's own budget field, sent per request; see
    # client/budget.py for which field each engine kind gets.
    thinking_budget: int | None = Field(default=None, ge=0)
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    # keep this many of max_tokens for the answer: budget = min(thinking_budget, max_tokens - M)
    answer_reserve: int | None = Field(default=None, ge=1)
    budget_field: str | None = None  # the body field of an external endpoint's budget


class RunSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "run"
    out: str = "runs"
    seed: int = 0
    api: Literal["chat", "completions"] = "chat"
    engine: EngineSpec = Field(default_factory=EngineSpec)
    workload: WorkloadSpec = Field(default_factory=WorkloadSpec)
    arrival: ArrivalSpec = Field(default_factory=ArrivalSpec)
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    timeout_s: float = Field(default=600.0, gt=0)
    sample_interval_s: float = Field(default=0.5, gt=0)
    continuous_usage: Literal["auto", "on", "off"] = "auto"
    # Does the prompt pre-open <think>? auto: from the chat template of an engine we launch
    # (or --tokenizer) and the completions prompt; per request also a bare </think>.
    think_open: Literal["auto", "yes", "no"] = "auto"
    # Local tokenizer (path or cached name) for counts when the server sends no usage;
    # None: the launched engine's local model directory, if any.
    tokenizer: str | None = None
    store_text: bool = True
    grade: bool = True
    slo: dict[str, float] = Field(default_factory=dict)
    # A run whose share of failed requests passes this fails (exit 1), summary says so.
    max_error_rate: float = Field(default=0.5, ge=0, le=1)

    @field_validator("slo")
    @classmethod
    def _known_slos(cls, v: dict[str, float]) -> dict[str, float]:
        for k, val in v.items():
            if k not in SLO_METRICS:
                raise ValueError(f"unknown SLO {k!r}; use one of {', '.join(SLO_METRICS)}")
            if val <= 0:
                raise ValueError(f"SLO {k} must be > 0 seconds")
        return v


def spec_error_line(err: ValidationError, prefix: str = "") -> str:
    """One line naming the first bad field by its dotted path, and why."""
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"])
    where = f"{prefix}{path}" if path else prefix.rstrip(".") or "spec"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown field; remove it or check the spelling"
    return f"{where}: {msg}"


def load_run_spec(data: dict[str, Any], source: str = "spec") -> RunSpec:
    try:
        return RunSpec.model_validate(data)
    except ValidationError as err:
        raise UsageError(f"{source}: {spec_error_line(err)}") from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise UsageError(f"spec file {p} not found; check the path") from None
    except yaml.YAMLError as err:
        raise UsageError(f"spec file {p} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"spec file {p} must hold a mapping at the top level")
    return data
