"""EngineSpec: what to serve and how (an external endpoint, or an engine we launch)."""

from __future__ import annotations

import shlex
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reasonperf.errors import UsageError

EngineKind = Literal["external", "vllm", "sglang"]


class EngineSpec(BaseModel):
    """One engine's settings. Fields a launched engine does not support are rejected by it."""

    model_config = ConfigDict(extra="forbid")

    kind: EngineKind = "vllm"
    model: str | None = None  # path or name; None = the embedded SmolLM2 (or, external: the first one served)
    served_model_name: str | None = None  # None = derived from model
    url: str | None = None  # external base URL, e.g. http://host:8000/v1
    metrics_url: str | None = None  # None = scheme://host:port/metrics of url
    api_key_env: str = "OPENAI_API_KEY"  # the name of the variable; the key itself is never stored
    dtype: str = "auto"  # auto: the model's on a GPU; on a CPU, bf16 only with native bf16
    max_model_len: int | None = Field(default=None, gt=0)
    max_num_seqs: int | None = Field(default=None, gt=0)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    enable_prefix_caching: bool | None = None
    speculative_config: dict[str, Any] | None = None
    reasoning_parser: str | None = None
    num_gpu_blocks_override: int | None = Field(default=None, gt=0)
    kv_cache_space_gib: float = Field(default=1.0, gt=0)  # VLLM_CPU_KVCACHE_SPACE on the CPU build
    enforce_eager: bool | None = None  # None: eager on a CPU target only (GPUs use CUDA graphs)
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    startup_timeout_s: float = Field(default=300, gt=0)
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)

    @field_validator("extra_args")
    @classmethod
    def _split_args(cls, value: list[str]) -> list[str]:
        """``--engine-arg "--tensor-parallel-size 2"`` is two arguments: an item with a space
        is split as a shell would (quotes kept together); ``--flag=value`` stays one."""
        out: list[str] = []
        for item in value:
            out += shlex.split(item) if any(c.isspace() for c in item) else [item]
        return out

    @field_validator("url", "metrics_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL like http://host:8000/v1")
        path = parts.path.rstrip("/")
        return urlunsplit((parts.scheme, parts.netloc, path, "", ""))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineSpec:
        """Validate user input; a bad field raises a one-line UsageError naming it."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "engine"
            raise UsageError(f"engine.{field}: {err['msg']}; fix it in the engine spec") from None

    def base_url(self) -> str:
        """The external endpoint's base URL (ending in /v1 when it was given without a path)."""
        if self.url is None:
            raise UsageError("engine.url is required for an external engine; pass --endpoint URL")
        parts = urlsplit(self.url)
        if parts.path in ("", "/"):
            return urlunsplit((parts.scheme, parts.netloc, "/v1", "", ""))
        return self.url

    def derived_metrics_url(self, base_url: str) -> str:
        """metrics_url if given, else scheme://host:port/metrics of base_url."""
        if self.metrics_url is not None:
            return self.metrics_url
        parts = urlsplit(base_url)
        return urlunsplit((parts.scheme, parts.netloc, "/metrics", "", ""))
