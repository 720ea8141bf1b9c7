"""GPU memory and utilisation through NVML, when there is one.

``pynvml`` (the ``nvidia-ml-py`` package, extra ``reasonperf[gpu]``) is optional: without
it, or without a driver or a device, ``available()`` is False and ``reason`` says why, so
the run can record a note instead of failing.

NVML sees every GPU of the machine it runs on, so the caller must say whose GPUs to watch:
the run samples NVML only for an engine it launched on this host, with that engine's
environment (its CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER, not the client's).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from reasonperf.telemetry.names import (
    GPU_MEMORY_TOTAL_BYTES,
    GPU_MEMORY_USED_BYTES,
    GPU_UTILIZATION,
)

CUDA_ENV_KEYS = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")


def visible_devices(env: Mapping[str, str] | None = None) -> list[str] | None:
    """Device indices or UUIDs from CUDA_VISIBLE_DEVICES of env (default: this process);
    None when unset (all devices).

    NVML ignores that variable and always sees every GPU, so without this a benchmark on
    one GPU of a shared machine would report its neighbours' memory too.
    """
    raw = (os.environ if env is None else env).get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return None
    return [item.strip() for item in raw.split(",") if item.strip()]


class NvmlGpu:
    """Samples the watched GPUs: used and total memory summed, utilisation averaged.

    ``devices``: CUDA indices or UUIDs; None reads CUDA_VISIBLE_DEVICES of ``env`` (the
    engine's environment; default this process's), else all GPUs. An index counts GPUs in
    CUDA's order: by PCI bus id with CUDA_DEVICE_ORDER=PCI_BUS_ID, else fastest first,
    which is the bus order too when all GPUs are one model (and unknown otherwise).
    ``bus_ids``: the PCI bus ids of the watched GPUs.
    Calls are blocking (about a millisecond each): run ``sample`` in a worker thread.
    """

    def __init__(self, devices: Sequence[str] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.reason: str | None = None
        self.bus_ids: list[str] = []
        self._nvml: ModuleType | None = None
        self._handles: list[Any] = []
        env = os.environ if env is None else env
        wanted = visible_devices(env) if devices is None else list(devices)
        pci_order = env.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST") == "PCI_BUS_ID"
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
            self._handles = self._open_handles(nvml, wanted, pci_order)
            self.bus_ids = [_bus_id(nvml, h) for h in self._handles]
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
    def _open_handles(nvml: ModuleType, wanted: list[str] | None, pci_order: bool) -> list[Any]:
        every = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        if wanted is None:
            return every
        by_bus = sorted(every, key=lambda h: _bus_id(nvml, h))
        handles = []
        for device in wanted:
            if not device.isdigit():
                handles.append(nvml.nvmlDeviceGetHandleByUUID(device))
                continue
            index = int(device)
            if index >= len(by_bus):
                raise ValueError(f"CUDA_VISIBLE_DEVICES names GPU {index}; NVML sees {len(by_bus)}")
            if not pci_order and len({str(nvml.nvmlDeviceGetName(h)) for h in every}) > 1:
                raise ValueError(
                    "GPUs of different models and CUDA_DEVICE_ORDER is not PCI_BUS_ID, so which "
                    "GPU a CUDA index means is unknown; set CUDA_DEVICE_ORDER=PCI_BUS_ID or "
                    "give GPU UUIDs in CUDA_VISIBLE_DEVICES"
                )
            handles.append(by_bus[index])
        return handles

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


def _bus_id(nvml: ModuleType, handle: Any) -> str:
    bus = nvml.nvmlDeviceGetPciInfo(handle).busId
    return bus.decode() if isinstance(bus, bytes) else str(bus)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
