"""Engines: spec and command building, the launch/stop lifecycle (on a fake server), the
external endpoint check, and the real vLLM CPU engine on the tiny test models (marked
``engine``)."""

from __future__ import annotations

import http.server
import json
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from reasonperf.engines import EngineSpec, LaunchedEngine, make_engine, models
from reasonperf.engines.base import ENGINES
from reasonperf.engines.process import log_tail, one_line
from reasonperf.engines.sglang import SglangEngine
from reasonperf.engines.vllm import VllmEngine
from reasonperf.errors import EngineStartError, UsageError

TESTS_DIR = Path(__file__).resolve().parent


# --- helpers ------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """Running and not a zombie (reads /proc, no psutil needed)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_gone(pids: list[int], deadline_s: float = 10.0) -> list[int]:
    """The pids still alive when they all died or the deadline passed."""
    end = time.monotonic() + deadline_s
    while True:
        left = [p for p in pids if _alive(p)]
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)


def stream_chat(base_url: str, model: str, text: str, **params) -> list[dict]:
    """POST a streamed chat completion; returns the parsed SSE events (without [DONE])."""
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": True,
            "stream_options": {"include_usage": True}, **params}
    request = urllib.request.Request(f"{base_url}/chat/completions",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    events = []
    with urllib.request.urlopen(request, timeout=120) as resp:
        for raw in resp:
            line = raw.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
    return events


# --- a fake server, to test the lifecycle in a second ------------------------------------

FAKE_SERVER = textwrap.dedent(
    """
    import http.server, signal, subprocess, sys
    port, mode = int(sys.argv[1]), sys.argv[2]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(f"child {child.pid}", flush=True)
    if mode == "crash":
        for i in range(30):
            print(f"loading step {i}", flush=True)
        print("ValueError: the fake server cannot start", flush=True)
        sys.exit(3)
    if mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
    """
)


class FakeEngine(LaunchedEngine):
    """Launches FAKE_SERVER: a /health server with one child process."""

    kind = "fake"
    stop_grace_s = 1.0

    def __init__(self, spec: EngineSpec, mode: str = "ok") -> None:
        super().__init__(spec)
        self.mode = mode

    def command(self, port: int) -> list[str]:
        return [sys.executable, "-c", FAKE_SERVER, str(port), self.mode]

    def build_args(self, port: int) -> list[str]:
        return []


def _fake(mode: str = "ok", **spec: object) -> FakeEngine:
    return FakeEngine(EngineSpec(model="fake-model", startup_timeout_s=20, **spec), mode)


def _child_pid(log: Path) -> int:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = re.search(r"child (\d+)", log.read_text())
        if found:
            return int(found.group(1))
        time.sleep(0.05)
    raise AssertionError(f"no child pid in {log}")


def test_fake_engine_starts_and_stop_kills_the_whole_group(tmp_path: Path) -> None:
    engine = _fake()
    with engine:
        assert engine.started
        assert urllib.request.urlopen(engine.base_url.removesuffix("/v1") + "/health").status == 200
        pids = engine.pids()
        assert engine.pid in pids and len(pids) == 2  # the server and its child
    assert _wait_gone(pids) == []
    engine.stop()  # idempotent
    assert engine.log_path is not None and engine.log_path.is_file()


def test_stubborn_server_is_killed_after_the_grace(tmp_path: Path) -> None:
    engine = _fake("stubborn")
    engine.start(tmp_path)
    pids = engine.pids()
    t0 = time.monotonic()
    engine.stop()
    assert _wait_gone(pids, 5) == []
    assert time.monotonic() - t0 >= engine.stop_grace_s  # it did wait before SIGKILL


def test_crash_raises_one_line_error_with_log_tail(tmp_path: Path) -> None:
    engine = _fake("crash")
    with pytest.raises(EngineStartError) as info:
        engine.start(tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("fake failed to start: the server exited with status 3")
    assert "last log lines:" in msg and "ValueError: the fake server cannot start" in msg
    assert "loading step 29 | ValueError" in msg  # lines joined by " | "
    assert "loading step 10" not in msg  # only the tail
    child = _child_pid(tmp_path / "engine.log")
    assert _wait_gone([child]) == []  # the orphaned child went with the group


def test_ctrl_c_during_start_stops_the_server(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import reasonperf.engines.base as base

    def interrupt(*args: object, **kwargs: object) -> int:
        if not re.search(r"child \d+", (tmp_path / "engine.log").read_text()):
            raise OSError("not listening yet")
        raise KeyboardInterrupt  # as if Ctrl-C came once the server had a child

    monkeypatch.setattr(base, "http_status", interrupt)
    engine = _fake()
    with pytest.raises(KeyboardInterrupt):
        engine.start(tmp_path)
    assert engine.pid is not None
    assert _wait_gone([engine.pid, _child_pid(tmp_path / "engine.log")]) == []


def test_sigterm_to_the_parent_stops_the_server(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from test_engine_vllm import _fake
        engine = _fake()
        engine.start()
        print("PIDS", *engine.pids(), flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = parent.stdout.readline()  # blocks until the engine is healthy
        assert line.startswith("PIDS"), line
        pids = [int(p) for p in line.split()[1:]]
        assert len(pids) == 2 and all(_alive(p) for p in pids)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=20) == 128 + signal.SIGTERM
        assert _wait_gone(pids) == []
    finally:
        parent.kill()
        parent.wait()


def test_taken_port_fails_fast_naming_it() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        engine = _fake(port=port)
        t0 = time.monotonic()
        with pytest.raises(EngineStartError, match=f"port {port} "):
            engine.start()
        assert time.monotonic() - t0 < 5
        assert engine.pid is None  # nothing was launched


def test_log_tail_is_compact(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("a\n\x1b[32mgreen\x1b[0m\n   ^^^^^^\n\nprogress 1\rprogress 2\nlast\n")
    assert log_tail(log, 3) == ["progress 1", "progress 2", "last"]
    assert log_tail(log) == ["a", "green", "progress 1", "progress 2", "last"]
    assert one_line(["x" * 50], max_chars=10) == "..." + "x" * 10
    assert log_tail(tmp_path / "missing.log") == []


# --- spec and command building ----------------------------------------------------------


def _flag(cmd: list[str], name: str) -> str | None:
    return cmd[cmd.index(name) + 1] if name in cmd else None


def test_vllm_command_maps_every_field(tmp_path: Path) -> None:
    spec = EngineSpec(
        model=str(tmp_path / "m"), dtype="bfloat16", max_model_len=2048, max_num_seqs=8,
        gpu_memory_utilization=0.5, quantization="fp8", kv_cache_dtype="fp8",
        enable_prefix_caching=False, speculative_config={"method": "ngram", "num_speculative_tokens": 3},
        reasoning_parser="deepseek_r1", num_gpu_blocks_override=64, extra_args=["--seed", "1"],
        env={"HF_TOKEN": "secret", "OMP_NUM_THREADS": "2"},
    )
    engine = VllmEngine(spec)
    cmd = engine.command(1234)
    assert cmd[:3] == [sys.executable, "-m", "vllm.entrypoints.openai.api_server"]
    expected = {"--model": str(tmp_path / "m"), "--served-model-name": "m", "--port": "1234",
                "--host": "127.0.0.1", "--dtype": "bfloat16", "--max-model-len": "2048",
                "--max-num-seqs": "8", "--gpu-memory-utilization": "0.5",
                "--quantization": "fp8", "--kv-cache-dtype": "fp8",
                "--reasoning-parser": "deepseek_r1", "--num-gpu-blocks-override": "64"}
    for name, value in expected.items():
        assert _flag(cmd, name) == value, name
    assert json.loads(_flag(cmd, "--speculative-config")) == spec.speculative_config
    assert "--no-enable-prefix-caching" in cmd and "--enforce-eager" in cmd
    assert cmd[-2:] == ["--seed", "1"]
    info = engine.describe()
    assert info["kind"] == "vllm" and info["served_model"] == "m"
    assert "HF_TOKEN" not in info["env"] and info["env"]["OMP_NUM_THREADS"] == "2"
    assert "secret" not in json.dumps(info)


def test_vllm_defaults_stay_minimal_and_kv_space_goes_to_env(tmp_path: Path) -> None:
    engine = VllmEngine(EngineSpec(model="Org/Some-Model", enforce_eager=False,
                                   enable_prefix_caching=True, dtype="float16"))
    cmd = engine.command(80)
    assert engine.served_model == "Org/Some-Model"
    for absent in ("--max-model-len", "--reasoning-parser", "--enforce-eager"):
        assert absent not in cmd
    assert "--enable-prefix-caching" in cmd and _flag(cmd, "--dtype") == "float16"
    if VllmEngine.is_cpu_build():
        assert engine.build_env() == {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_SERVER_DEV_MODE": "1"}
        half = VllmEngine(EngineSpec(model="x", kv_cache_space_gib=0.5))
        assert _flag(half.command(80), "--kv-cache-memory-bytes") == str(1 << 29)
        assert half.build_env() == {"VLLM_SERVER_DEV_MODE": "1"}


def test_extra_args_may_not_override_owned_flags() -> None:
    with pytest.raises(UsageError, match="--port"):
        VllmEngine(EngineSpec(model="x", extra_args=["--port=9"]))


def test_default_model_is_the_embedded_tiny_thinker() -> None:
    engine = VllmEngine(EngineSpec())
    assert Path(engine.model).name == "tiny-thinker"
    assert (Path(engine.model) / "model.safetensors").exists()
    assert engine.served_model == "tiny-thinker"
    smollm2 = VllmEngine(EngineSpec(model="builtin:smollm2"))
    assert smollm2.spec.model == "builtin:smollm2"  # still served by name


def test_sglang_command_translates_fields() -> None:
    spec = EngineSpec(
        kind="sglang", model="/m/Qwen3-0.6B", max_model_len=4096, max_num_seqs=16,
        gpu_memory_utilization=0.8, kv_cache_dtype="fp8_e5m2", enable_prefix_caching=False,
        reasoning_parser="deepseek_r1",
        speculative_config={"method": "eagle", "model": "/d", "num_speculative_tokens": 3},
    )
    engine = make_engine(spec)
    assert isinstance(engine, SglangEngine)
    cmd = engine.command(30000)
    assert cmd[:3] == [sys.executable, "-m", "sglang.launch_server"]
    expected = {"--model-path": "/m/Qwen3-0.6B", "--served-model-name": "Qwen3-0.6B",
                "--port": "30000", "--context-length": "4096", "--max-running-requests": "16",
                "--mem-fraction-static": "0.8", "--kv-cache-dtype": "fp8_e5m2",
                "--reasoning-parser": "deepseek-r1", "--speculative-algorithm": "EAGLE",
                "--speculative-draft-model-path": "/d", "--speculative-num-steps": "3",
                "--speculative-eagle-topk": "1", "--speculative-num-draft-tokens": "4"}
    for name, value in expected.items():
        assert _flag(cmd, name) == value, name
    assert "--disable-radix-cache" in cmd and "--enable-metrics" in cmd
    assert "--disable-cuda-graph" not in cmd  # a GPU target keeps its CUDA graphs
    with pytest.raises(UsageError, match="num_gpu_blocks_override"):
        SglangEngine(EngineSpec(kind="sglang", model="m", num_gpu_blocks_override=8)).command(1)


def test_spec_rejects_bad_input_with_one_line_usage_errors() -> None:
    with pytest.raises(UsageError, match=r"^engine\.port: .*fix it") as info:
        EngineSpec.from_dict({"port": 70000})
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match=r"engine\.bogus"):
        EngineSpec.from_dict({"bogus": 1})
    with pytest.raises(UsageError, match=r"engine\.url"):
        EngineSpec.from_dict({"kind": "external", "url": "ftp://x"})
    with pytest.raises(UsageError, match="unknown engine 'tgi'"):
        ENGINES.get("tgi")
    with pytest.raises(UsageError, match="--endpoint"):
        make_engine(EngineSpec(kind="external"))


def test_spec_derives_urls() -> None:
    spec = EngineSpec(kind="external", url="http://h:8000/")
    assert spec.base_url() == "http://h:8000/v1"
    assert spec.derived_metrics_url(spec.base_url()) == "http://h:8000/metrics"
    spec = EngineSpec(kind="external", url="https://api.example.com/api/v1",
                      metrics_url="http://h:9/m")
    assert spec.base_url() == "https://api.example.com/api/v1"
    assert spec.derived_metrics_url(spec.base_url()) == "http://h:9/m"


# --- external ---------------------------------------------------------------------------


@pytest.fixture
def models_server() -> Iterator[tuple[str, list[dict]]]:
    """A local /v1/models server; records the Authorization headers it saw."""
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({"path": self.path, "auth": self.headers.get("Authorization")})
            body = json.dumps({"data": [{"id": "served-a"}, {"id": "served-b"}]}).encode()
            self.send_response(200 if self.path == "/v1/models" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_external_picks_first_model_and_sends_key(models_server, monkeypatch) -> None:
    url, seen = models_server
    monkeypatch.setenv("MY_KEY", "sk-test")
    with make_engine(EngineSpec(kind="external", url=url, api_key_env="MY_KEY")) as engine:
        assert engine.served_model == "served-a"
        assert engine.base_url == f"{url}/v1"
        assert engine.metrics_url == f"{url}/metrics"
    assert seen[-1] == {"path": "/v1/models", "auth": "Bearer sk-test"}
    info = engine.describe()
    assert info["kind"] == "external" and "sk-test" not in json.dumps(info)
    named = make_engine(EngineSpec(kind="external", url=url, model="served-b"))
    named.start()
    assert named.served_model == "served-b"


def test_external_unreachable_is_a_usage_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        engine = make_engine(EngineSpec(kind="external", url=f"http://127.0.0.1:{port}/v1"))
        with pytest.raises(UsageError, match=r"endpoint http://127\.0\.0\.1:\d+/v1 is "
                                             r"unreachable: .*; check --endpoint"):
            engine.start()


# --- the real vLLM CPU engine -------------------------------------------------------------


@pytest.mark.engine
def test_vllm_tiny_random_serves_and_streams(vllm_tiny_random: LaunchedEngine) -> None:
    engine = vllm_tiny_random
    root = engine.base_url.removesuffix("/v1")
    assert urllib.request.urlopen(f"{root}/health", timeout=5).status == 200
    metrics = urllib.request.urlopen(engine.metrics_url, timeout=5).read().decode()
    assert "vllm:" in metrics
    events = stream_chat(engine.base_url, engine.served_model, "Count to ten.", max_tokens=24)
    pieces = [c["delta"].get("content") for e in events for c in e.get("choices", [])]
    text_chunks = [p for p in pieces if p]
    assert len(text_chunks) > 1  # streamed piece by piece, not in one block
    usage = events[-1]["usage"]
    assert usage["completion_tokens"] == 24  # never stops early: exactly max_tokens
    finish = [c["finish_reason"] for e in events for c in e.get("choices", [])
              if c.get("finish_reason")]
    assert finish == ["length"]
    info = engine.describe()
    assert info["version"] and info["command"][1:3] == ["-m", engine.module]
    assert info["start_s"] > 0
    dtype = info["choices"]["dtype"]  # chosen from this CPU's flags, recorded with why
    assert dtype["value"] in ("bfloat16", "float32") and "CPU" in dtype["reason"]
    assert info["command"][info["command"].index("--dtype") + 1] == dtype["value"]


@pytest.mark.engine
def test_vllm_tiny_reasoner_streams_reasoning_then_content(
    vllm_tiny_reasoner: LaunchedEngine,
) -> None:
    engine = vllm_tiny_reasoner
    script_len = len(models.reasoner_script(models.build_tokenizer()))  # with <think>s and EOS
    for params in ({"temperature": 0.0}, {"temperature": 0.6, "seed": 7}):
        events = stream_chat(engine.base_url, engine.served_model, "What is 6 times 7?",
                             max_tokens=100, **params)
        kinds, reasoning, content = [], [], []
        for event in events:
            for choice in event.get("choices", []):
                delta = choice["delta"]
                piece = delta.get("reasoning") or delta.get("reasoning_content")
                if piece:
                    kinds.append("r")
                    reasoning.append(piece)
                if delta.get("content"):
                    kinds.append("c")
                    content.append(delta["content"])
        order = "".join(kinds)
        assert re.fullmatch(r"r{2,}c+", order), order  # all reasoning, then all content
        assert "".join(reasoning).strip() == models.REASONING_TEXT
        assert "".join(content).strip() == models.ANSWER_TEXT
        assert events[-1]["usage"]["completion_tokens"] == script_len


@pytest.mark.engine
def test_vllm_stop_leaves_no_process(engine_test_models: dict[str, Path],
                                     tmp_path: Path) -> None:
    """Its own short-lived engine: stopping a shared one would break other tests."""
    pytest.importorskip("vllm")
    spec = EngineSpec(model=str(engine_test_models["tiny-random"]), max_model_len=512,
                      num_gpu_blocks_override=64)
    with make_engine(spec) as engine:
        engine_pids = engine.pids()
        assert len(engine_pids) >= 2  # the API server and its engine-core process
        events = stream_chat(engine.base_url, engine.served_model, "hi", max_tokens=4)
        assert events[-1]["usage"]["completion_tokens"] == 4
    assert _wait_gone(engine_pids) == []


@pytest.mark.engine
def test_vllm_bad_model_path_reports_log_tail(tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    engine = make_engine(EngineSpec(model=str(tmp_path / "no-such-model")))
    with pytest.raises(EngineStartError) as info:
        engine.start(tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("vllm failed to start: model ")
    assert "was not found" in msg
    last_line = log_tail(tmp_path / "engine.log", 1)[0]
    assert "last log lines:" in msg and msg.endswith(last_line)
    assert engine.pid is not None and _wait_gone([engine.pid]) == []


@pytest.mark.engine
def test_vllm_port_taken_by_a_running_engine(vllm_tiny_random: LaunchedEngine) -> None:
    spec = EngineSpec(model=vllm_tiny_random.model, port=vllm_tiny_random.port)
    with pytest.raises(EngineStartError, match=f"port {vllm_tiny_random.port} "):
        make_engine(spec).start()
