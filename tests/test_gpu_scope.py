"""GPU telemetry describes the engine's GPUs or nothing: never the client host's GPUs for
a remote endpoint, never the client's CUDA_VISIBLE_DEVICES for an engine launched here."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest

from reasonperf.config import load_run_spec
from reasonperf.engines import EngineSpec
from reasonperf.engines.vllm import VllmEngine
from reasonperf.run import execute_run
from reasonperf.telemetry import names
from reasonperf.telemetry.gpu import NvmlGpu
from tests.fake_server import FakeServer, Programme
from tests.test_telemetry import _fake_pynvml


def test_an_external_endpoint_gets_no_nvml_samples(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # this client has a GPU; the server behind --endpoint may be another machine
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml([5], [10], [50]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with FakeServer(Programme(ttft_s=0.01, itl_s=0.001, reasoning_tokens=3,
                              answer_tokens=3)) as srv:
        spec = load_run_spec({
            "name": "gpu-scope", "out": str(tmp_path), "grade": False,
            "engine": {"kind": "external", "url": srv.base_url, "model": "fake-model"},
            "workload": {"name": "procedural", "limit": 2},
            "arrival": {"name": "batch", "batch_size": 2},
        })
        result = execute_run(spec)
    table = pq.read_table(result.run_dir / "timeline.parquet")
    assert names.SOURCE_GPU not in set(table.column("source").to_pylist())
    info = orjson.loads((result.run_dir / "run.json").read_bytes())
    assert any("GPU telemetry off" in n and "not launched" in n for n in info["notes"])


def test_a_launched_engine_is_sampled_with_its_own_device_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml([1, 20, 300], [10**4] * 3, [0] * 3))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    engine = VllmEngine(EngineSpec(model="m", env={"CUDA_VISIBLE_DEVICES": "2"}))
    env = engine.gpu_env()
    assert env == {"CUDA_VISIBLE_DEVICES": "2", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    with NvmlGpu(env=env) as gpu:
        assert gpu.sample()[names.GPU_MEMORY_USED_BYTES] == 300.0
    inherited = VllmEngine(EngineSpec(model="m")).gpu_env()
    assert inherited["CUDA_VISIBLE_DEVICES"] == "0"  # the engine inherits ours
