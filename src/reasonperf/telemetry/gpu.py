"""GPU memory and utilisation through NVML, when there is one.

``pynvml`` (the ``nvidia-ml-py`` package, extra ``reasonperf[gpu]``) is optional: without
it, or without a driver or a device, ``available()`` is False and ``reason`` says why, so
the run can record a note instead of failing.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from reasonperf.telemetry.names import (
    GPU_MEMORY_TOTAL_BYTES,
    GPU_MEMORY_USED_BYTES,
    GPU_UTILIZATION,
)


def visible_devices() -> list[str] | None:
    """Device indices or UUIDs from CUDA_VISIBLE_DEVICES; None when unset (all devices).

    NVML ignores that variable and always sees every GPU, so without this a benchmark on
    one GPU of a shared machine would report its neighbours' memory too.
    """
    raw = os.environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return None
    return [item.strip() for item in raw.split(",") if item.strip()]


class NvmlGpu:
    """Samples the watched GPUs: used and total memory summed, utilisation averaged.

    ``devices``: NVML indices or UUIDs; None reads CUDA_VISIBLE_DEVICES, else all GPUs.
    Calls are blocking (about a millisecond each): run ``sample`` in a worker thread.
    """

    def __init__(self, devices: Sequence[str] | None = None) -> None:
        self.reason: str | None = None
        self._nvml: ModuleType | None = None
        self._handles: list[Any] = []
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError:
            self.reason = "GPU telemetry off: pynvml not importable (pip install nvidia-ml-py)"
            return
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError subclasses, e.g. LibraryNotFound, DriverNotLoaded
            self.reason = f"GPU telemetry off: NVML init failed ({_describe(exc)})"
            return
        try:
            self._handles = self._open_handles(nvml, devices)
        except Exception as exc:
            nvml.nvmlShutdown()
            self.reason = f"GPU telemetry off: cannot open GPU devices ({_describe(exc)})"
            return
        if not self._handles:
            nvml.nvmlShutdown()
            self.reason = "GPU telemetry off: NVML found no GPU"
            return
        self._nvml = nvml

    @staticmethod
    def _open_handles(nvml: ModuleType, devices: Sequence[str] | None) -> list[Any]:
        wanted = visible_devices() if devices is None else list(devices)
        if wanted is None:
            return [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        return [
            nvml.nvmlDeviceGetHandleByIndex(int(d))
            if d.isdigit()
            else nvml.nvmlDeviceGetHandleByUUID(d)
            for d in wanted
        ]

    def available(self) -> bool:
        return self._nvml is not None

    @property
    def device_count(self) -> int:
        return len(self._handles)

    def sample(self) -> dict[str, float]:
        """Unified GPU metric -> value now. Raises the NVML error when a read fails."""
        nvml = self._nvml
        if nvml is None:
            return {}
        used = total = util = 0.0
        for handle in self._handles:
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            used += float(memory.used)
            total += float(memory.total)
            util += float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu) / 100.0
        return {
            GPU_MEMORY_USED_BYTES: used,
            GPU_MEMORY_TOTAL_BYTES: total,
            GPU_UTILIZATION: util / len(self._handles),
        }

    def close(self) -> None:
        if self._nvml is not None:
            nvml, self._nvml = self._nvml, None
            self._handles = []
            try:
                nvml.nvmlShutdown()
            except Exception:  # shutting down after a driver error: nothing left to free
                pass

    def __enter__(self) -> NvmlGpu:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
