"""The Engine interface, its registry, and the shared shape of an engine we launch."""

from __future__ import annotations

import importlib.metadata
import os
import re
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from reasonperf.engines.hardware import choose_cpu_dtype, read_cpu_flags
from reasonperf.engines.lifeline import StaleEngine, find_stale_engines
from reasonperf.engines.models import resolve_builtin
from reasonperf.engines.process import (
    ManagedProcess,
    http_post,
    http_status,
    log_tail,
    one_line,
    pick_free_port,
    port_is_free,
)
from reasonperf.engines.spec import EngineSpec
from reasonperf.errors import EngineStartError, UsageError
from reasonperf.redact import redact_args
from reasonperf.registry import Registry
from reasonperf.telemetry.gpu import CUDA_ENV_KEYS


@runtime_checkable
class Engine(Protocol):
    base_url: str  # ".../v1"
    metrics_url: str | None
    served_model: str  # the name to put in the request's "model" field

    def start(self, log_dir: Path | None = None) -> None:
        """Block until the engine answers, or raise EngineStartError / UsageError."""

    def stop(self) -> None:
        """Idempotent; a launched engine's whole process group is gone afterwards."""

    def describe(self) -> dict[str, Any]:
        """kind, version, command, model, served_model, base_url, env (non-secret keys)."""

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc: object) -> None: ...


def engine_gpu_env(engine: object) -> dict[str, str] | None:
    """The CUDA_* environment of an engine running on this host (whose GPUs NVML may
    sample), or None for an engine elsewhere or of unknown placement (an endpoint)."""
    gpu_env = getattr(engine, "gpu_env", None)
    return gpu_env() if callable(gpu_env) else None


ENGINES: Registry[type] = Registry("engine")


class PrefixCacheResetError(RuntimeError):
    """The engine has no prefix-cache reset route, or refused to reset."""


_SECRET = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)


DEFAULT_MODEL = "builtin:tiny-thinker"  # what a launched engine serves when no model is given


def make_engine(spec: EngineSpec) -> Engine:
    """The engine for spec.kind (engines register themselves in reasonperf.engines)."""
    import reasonperf.engines  # noqa: F401  (fills ENGINES)

    return ENGINES.get(spec.kind)(spec)


def public_env(env: dict[str, str]) -> dict[str, str]:
    """env without the entries whose names look like secrets (keys, tokens, passwords)."""
    return {k: v for k, v in sorted(env.items()) if not _SECRET.search(k)}


def dist_version(*names: str) -> str | None:
    """The installed version of the first distribution found among names."""
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


class EngineBase:
    """Context-manager plumbing shared by every engine."""

    def start(self, log_dir: Path | None = None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def started(self) -> bool:
        return False

    def __enter__(self) -> Self:
        if not self.started:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LaunchedEngine(EngineBase, ABC):
    """An OpenAI-compatible server we start as a subprocess and stop at the end.

    Subclasses say how to build the command line and environment; the lifecycle (port,
    process group, health wait, failure diagnosis, stop) is the same for every server.
    """

    kind: str = ""
    module: str = ""  # python -m <module>
    dist_names: tuple[str, ...] = ()  # distributions whose version is reported
    health_path: str = "/health"
    owned_flags: tuple[str, ...] = ()  # flags built from spec fields; extra_args may not set them
    stop_grace_s: float = 15.0  # SIGTERM -> SIGKILL delay

    prefix_cache_reset_path: str | None = None  # POST here empties the prefix cache

    def __init__(self, spec: EngineSpec, *, cpu_flags: frozenset[str] | None = None) -> None:
        self.spec = spec
        self._cpu_flags = cpu_flags  # None: read /proc/cpuinfo when a choice needs them
        clash = sorted(set(self.owned_flags) & {a.split("=", 1)[0] for a in spec.extra_args})
        if clash:
            raise UsageError(
                f"engine.extra_args sets {', '.join(clash)}, which reasonperf sets itself; "
                "use engine.model, engine.served_model_name, engine.host, engine.port instead"
            )
        self.host = spec.host
        self.port: int | None = spec.port
        self.base_url = ""
        self.metrics_url: str | None = None
        self.log_path: Path | None = None
        self.start_s: float | None = None
        self._process: ManagedProcess | None = None
        self._command: list[str] = []
        self._extra_env: dict[str, str] = {}
        self.stale_engines: list[StaleEngine] = []  # left running by an earlier process

    @cached_property
    def model(self) -> str:
        """Resolved on first use: the default model may need a one-off conversion."""
        return self.resolve_model()

    @cached_property
    def served_model(self) -> str:
        return self.spec.served_model_name or derive_served_name(self.model)

    # --- what subclasses provide -------------------------------------------------------
    def resolve_model(self) -> str:
        """The model path or name to serve. None means the embedded default: tiny-thinker,
        the reasoning model trained by this repository and shipped with it (it thinks inside
        a pre-opened <think>, longer for harder problems); SmolLM2-135M-Instruct stays
        available as ``builtin:smollm2``."""
        return resolve_builtin(self.spec.model or DEFAULT_MODEL) or str(self.spec.model)

    @abstractmethod
    def build_args(self, port: int) -> list[str]:
        """Server flags (after `python -m module`)."""

    def build_env(self) -> dict[str, str]:
        """Variables added to the inherited environment (spec.env wins)."""
        return {}

    # how the engine is told to skip CUDA graphs, and how its CPU target is named in reasons
    eager_flag = "--enforce-eager"
    cpu_target_label = "CPU target"
    gpu_dtype_reason = "GPU: the engine's auto (the model's dtype)"

    def targets_cpu(self) -> bool:
        """True when this launch runs on the CPU (no CUDA graphs; dtype from the CPU)."""
        return False

    def choices(self) -> dict[str, dict[str, Any]]:
        """dtype and eager mode this launch runs with: {name: {"value", "reason"}}.

        The user's setting wins (extra_args, then the spec). Otherwise CUDA graphs are what
        a GPU deployment runs, so only a CPU target (where they do not apply, and compiling
        costs minutes per start) runs eager, and a CPU target's dtype follows the CPU's
        bf16 support (see reasonperf.engines.hardware).
        """
        cpu = self.targets_cpu()
        user_dtype = self.user_flag("--dtype")
        if isinstance(user_dtype, str):
            dtype = {"value": user_dtype, "reason": "engine.extra_args"}
        elif self.spec.dtype != "auto":
            dtype = {"value": self.spec.dtype, "reason": "engine.dtype"}
        elif cpu:
            value, reason = choose_cpu_dtype(self.cpu_flags)
            dtype = {"value": value, "reason": f"{self.cpu_target_label}: {reason}"}
        else:
            dtype = {"value": "auto", "reason": self.gpu_dtype_reason}
        if self.user_flag(self.eager_flag) is not None:
            eager = {"value": True, "reason": "engine.extra_args"}
        elif self.spec.enforce_eager is not None:
            eager = {"value": self.spec.enforce_eager, "reason": "engine.enforce_eager"}
        elif cpu:
            eager = {"value": True, "reason": f"{self.cpu_target_label}: no CUDA graphs"}
        else:
            eager = {"value": False, "reason": "GPU: CUDA graphs on, as deployed"}
        return {"dtype": dtype, "enforce_eager": eager}

    def gpu_env(self) -> dict[str, str]:
        """CUDA_VISIBLE_DEVICES / CUDA_DEVICE_ORDER as the server sees them (we launch it
        here, with our environment plus its own): which GPUs GPU telemetry should watch."""
        env = {**os.environ, **self.build_env(), **self.spec.env}
        return {k: env[k] for k in CUDA_ENV_KEYS if k in env}

    # --- what the choices read ----------------------------------------------------------
    @property
    def cpu_flags(self) -> frozenset[str]:
        if self._cpu_flags is None:
            self._cpu_flags = read_cpu_flags()
        return self._cpu_flags

    def user_flag(self, name: str) -> str | bool | None:
        """The value the user gave to ``name`` in extra_args (True for a bare switch)."""
        args = self.spec.extra_args
        for i, arg in enumerate(args):
            if arg == name:
                nxt = args[i + 1] if i + 1 < len(args) else None
                return nxt if nxt is not None and not nxt.startswith("--") else True
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
        return None

    def diagnose(self, lines: list[str]) -> str | None:
        """A recognisable cause from the log tail, or None."""
        text = "\n".join(lines)
        if re.search(r"address already in use|Errno 98", text, re.IGNORECASE):
            return f"port {self.port} is already in use; pick another port or leave it unset"
        return None

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self._process is not None and self._process.exit_code() is None

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-m", self.module, *self.build_args(port), *self.spec.extra_args]

    def start(self, log_dir: Path | None = None) -> None:
        if self.started:
            raise EngineStartError(f"{self.kind} engine already started; stop() it first")
        self.stale_engines = find_stale_engines()
        port = self._choose_port()
        self.port = port
        self.base_url = f"http://{_url_host(self.host)}:{port}/v1"
        self.metrics_url = f"http://{_url_host(self.host)}:{port}/metrics"
        self.log_path = self._log_path(log_dir)
        self._command = self.command(port)
        self._extra_env = {**self.build_env(), **self.spec.env}
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self._extra_env}
        process = ManagedProcess(self._command, env, self.log_path)
        self._process = process
        t0 = time.monotonic()
        try:
            process.start()
            self._wait_healthy(process, deadline=t0 + self.spec.startup_timeout_s)
        except BaseException:
            process.stop(self.stop_grace_s)  # Ctrl-C or a failed start leaves no server behind
            raise
        self.start_s = time.monotonic() - t0

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(self.stop_grace_s)

    def pids(self) -> list[int]:
        """The server's pid and its descendants' (for tests and diagnostics)."""
        return self._process.descendants() if self._process is not None else []

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def exit_code(self) -> int | None:
        """None while the server runs (or before start), else its exit status."""
        return self._process.exit_code() if self._process is not None else None

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": dist_version(*self.dist_names),
            "command": redact_args(list(self._command) or self.command(self.port or 0)),
            "model": self.model,
            "served_model": self.served_model,
            "base_url": self.base_url,
            "metrics_url": self.metrics_url,
            "env": public_env(self._extra_env or {**self.build_env(), **self.spec.env}),
            "log_path": str(self.log_path) if self.log_path else None,
            "start_s": self.start_s,
            "choices": self.choices(),
            "warnings": [stale.describe() for stale in self.stale_engines],
        }

    def reset_prefix_cache(self, timeout_s: float = 30.0) -> str:
        """Empty the engine's prefix cache; returns what was done, in words.

        Raises PrefixCacheResetError when the engine has no such route or refuses (vLLM answers
        success=false while blocks are still held: retried until timeout_s).
        """
        path = self.prefix_cache_reset_path
        if path is None or not self.base_url:
            raise PrefixCacheResetError(f"{self.kind} engine cannot reset its prefix cache")
        url = self.base_url.removesuffix("/v1") + path
        deadline = time.monotonic() + timeout_s
        while True:
            status, body = http_post(url, timeout_s=min(10.0, timeout_s))
            if status == 200 and '"success":false' not in body.replace(" ", ""):
                return f"reset: POST {path}"
            if status == 404 or time.monotonic() >= deadline:
                raise PrefixCacheResetError(
                    f"{self.kind} refused to reset its prefix cache: POST {path} answered "
                    f"HTTP {status} {body[:200]}"
                )
            time.sleep(0.2)

    # --- helpers ----------------------------------------------------------------------------
    def _choose_port(self) -> int:
        if self.spec.port is None:
            return pick_free_port(self.host)
        if not port_is_free(self.host, self.spec.port):
            raise EngineStartError(
                f"{self.kind} failed to start: port {self.spec.port} on {self.host} is already "
                "in use; pick another engine.port or leave it unset to pick a free one"
            )
        return self.spec.port

    def _log_path(self, log_dir: Path | None) -> Path:
        if log_dir is not None:
            return Path(log_dir) / "engine.log"
        fd, name = tempfile.mkstemp(prefix=f"reasonperf-{self.kind}-", suffix=".log")
        os.close(fd)
        return Path(name)

    def _wait_healthy(self, process: ManagedProcess, deadline: float) -> None:
        url = f"http://{_url_host(self.host)}:{self.port}{self.health_path}"
        while True:
            code = process.exit_code()
            if code is not None:
                self._fail(f"the server exited with status {code}")
            try:
                if http_status(url, timeout_s=2.0) == 200:
                    return
            except OSError:
                pass  # not listening yet
            if time.monotonic() >= deadline:
                self._fail(
                    f"no healthy answer from {url} within {self.spec.startup_timeout_s:g} s "
                    "(raise engine.startup_timeout_s if the machine is slow)"
                )
            time.sleep(0.5)

    def _fail(self, what: str) -> None:
        assert self._process is not None and self.log_path is not None
        self._process.stop(self.stop_grace_s)
        lines = log_tail(self.log_path)
        cause = self.diagnose(lines) or what
        raise EngineStartError(
            f"{self.kind} failed to start: {cause}; log {self.log_path}; "
            f"last log lines: {one_line(lines)}"
        )


def derive_served_name(model: str) -> str:
    """A local path serves as its directory name; a hub id (org/name) as itself."""
    path = Path(model).expanduser()
    if path.exists() or model.startswith(("/", "./", "../", "~")):
        return path.name or model
    return model


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
