"""What a launched engine is told to do and why: eager mode only on the CPU, the dtype from
the CPU's flags, SGLang's /metrics, the prefix-cache reset route. Command building only (no
engine starts here); the decisions must reach describe() and so run.json."""

from __future__ import annotations

from pathlib import Path

import pytest

from reasonperf.engines import EngineSpec
from reasonperf.engines.hardware import choose_cpu_dtype, read_cpu_flags
from reasonperf.engines.sglang import SglangEngine
from reasonperf.engines.vllm import VllmEngine

AVX2_ONLY = frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"})
AVX512_BF16 = AVX2_ONLY | {"avx512f", "avx512_bf16"}
AMX = AVX2_ONLY | {"avx512f", "amx_bf16", "amx_tile"}


def _flag(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


@pytest.fixture
def cpu_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VllmEngine, "is_cpu_build", staticmethod(lambda: True))


@pytest.fixture
def gpu_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VllmEngine, "is_cpu_build", staticmethod(lambda: False))


# --- 9.6: eager mode only on the CPU build ------------------------------------------------


def test_vllm_gpu_build_keeps_cuda_graphs(gpu_build: None) -> None:
    engine = VllmEngine(EngineSpec(model="m"), cpu_flags=AVX2_ONLY)
    cmd = engine.command(8000)
    assert "--enforce-eager" not in cmd
    choices = engine.describe()["choices"]
    assert choices["enforce_eager"]["value"] is False
    assert "GPU" in choices["enforce_eager"]["reason"]
    assert "--dtype" not in cmd and choices["dtype"]["value"] == "auto"  # GPU: the model's dtype


def test_vllm_cpu_build_runs_eager(cpu_build: None) -> None:
    engine = VllmEngine(EngineSpec(model="m"), cpu_flags=AVX512_BF16)
    assert "--enforce-eager" in engine.command(8000)
    choice = engine.describe()["choices"]["enforce_eager"]
    assert choice["value"] is True and "CPU" in choice["reason"]


def test_vllm_explicit_eager_setting_wins(gpu_build: None) -> None:
    engine = VllmEngine(EngineSpec(model="m", enforce_eager=True), cpu_flags=AVX2_ONLY)
    assert "--enforce-eager" in engine.command(1)
    assert engine.describe()["choices"]["enforce_eager"]["reason"] == "engine.enforce_eager"
    by_arg = VllmEngine(EngineSpec(model="m", extra_args=["--enforce-eager"]))
    assert by_arg.command(1).count("--enforce-eager") == 1
    assert by_arg.describe()["choices"]["enforce_eager"]["value"] is True


def test_sglang_gpu_keeps_cuda_graphs_cpu_device_disables_them() -> None:
    gpu = SglangEngine(EngineSpec(kind="sglang", model="m"), cpu_flags=AVX2_ONLY)
    assert "--disable-cuda-graph" not in gpu.command(30000)
    assert gpu.describe()["choices"]["enforce_eager"]["value"] is False
    cpu = SglangEngine(EngineSpec(kind="sglang", model="m", extra_args=["--device", "cpu"]),
                       cpu_flags=AVX2_ONLY)
    cmd = cpu.command(30000)
    assert "--disable-cuda-graph" in cmd
    assert _flag(cmd, "--dtype") == "float32"  # a CPU target chooses its dtype like vLLM's


# --- 9.7: the dtype from the CPU's flags ----------------------------------------------------


def test_vllm_cpu_without_bf16_runs_float32(cpu_build: None) -> None:
    engine = VllmEngine(EngineSpec(model="m"), cpu_flags=AVX2_ONLY)
    assert _flag(engine.command(1), "--dtype") == "float32"
    choice = engine.describe()["choices"]["dtype"]
    assert choice["value"] == "float32"
    assert "avx512_bf16" in choice["reason"] and "amx_bf16" in choice["reason"]


@pytest.mark.parametrize("flags,which", [(AVX512_BF16, "avx512_bf16"), (AMX, "amx_bf16")])
def test_vllm_cpu_with_bf16_runs_bfloat16(cpu_build: None, flags: frozenset[str],
                                          which: str) -> None:
    engine = VllmEngine(EngineSpec(model="m"), cpu_flags=flags)
    assert _flag(engine.command(1), "--dtype") == "bfloat16"
    assert which in engine.describe()["choices"]["dtype"]["reason"]


def test_user_dtype_wins_over_the_cpu_choice(cpu_build: None) -> None:
    engine = VllmEngine(EngineSpec(model="m", dtype="bfloat16"), cpu_flags=AVX2_ONLY)
    assert _flag(engine.command(1), "--dtype") == "bfloat16"
    assert engine.describe()["choices"]["dtype"] == {"value": "bfloat16",
                                                      "reason": "engine.dtype"}
    for extra in (["--dtype", "half"], ["--dtype=half"]):
        engine = VllmEngine(EngineSpec(model="m", extra_args=extra), cpu_flags=AVX2_ONLY)
        cmd = engine.command(1)
        assert sum(a.startswith("--dtype") for a in cmd) == 1, cmd  # only the user's
        assert engine.describe()["choices"]["dtype"]["value"] == "half"


def test_this_machine_reads_its_own_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags\t\t: fpu avx2 avx512_bf16\n\n"
                       "processor : 1\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert read_cpu_flags(cpuinfo) == frozenset({"fpu", "avx2", "avx512_bf16"})
    assert read_cpu_flags(tmp_path / "missing") == frozenset()
    value, reason = choose_cpu_dtype(frozenset())
    assert value == "float32" and "unknown" in reason  # no flags known: the safe choice


# --- 9.8: SGLang serves /metrics ------------------------------------------------------------


def test_sglang_enables_metrics() -> None:
    cmd = SglangEngine(EngineSpec(kind="sglang", model="m")).command(30000)
    assert cmd.count("--enable-metrics") == 1
    own = SglangEngine(EngineSpec(kind="sglang", model="m", extra_args=["--enable-metrics"]))
    assert own.command(1).count("--enable-metrics") == 1


# --- 9.9: the prefix-cache reset route ------------------------------------------------------


def test_vllm_serves_the_reset_route_only_in_dev_mode() -> None:
    engine = VllmEngine(EngineSpec(model="m"))
    # vLLM 0.32 registers POST /reset_prefix_cache only with VLLM_SERVER_DEV_MODE=1
    assert engine.build_env()["VLLM_SERVER_DEV_MODE"] == "1"
    assert engine.prefix_cache_reset_path == "/reset_prefix_cache"
    assert SglangEngine.prefix_cache_reset_path == "/flush_cache"


def test_reset_retries_while_blocks_are_held_and_names_a_missing_route() -> None:
    import http.server
    import threading

    answers = [(200, b'{"success":false}'), (200, b'{"success": true}')]
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.path)
            code, body = answers.pop(0) if answers else (404, b'{"detail":"Not Found"}')
            self.send_response(code)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        engine = VllmEngine(EngineSpec(model="m"))
        engine.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        assert engine.reset_prefix_cache(timeout_s=10) == "reset: POST /reset_prefix_cache"
        assert seen == ["/reset_prefix_cache"] * 2  # success=false was retried
        from reasonperf.engines.base import PrefixCacheResetError

        with pytest.raises(PrefixCacheResetError, match="HTTP 404"):
            engine.reset_prefix_cache(timeout_s=10)
    finally:
        server.shutdown()
        server.server_close()
