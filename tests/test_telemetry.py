"""Telemetry: /metrics parsing (vLLM, SGLang), the sampler against a loopback server, NVML."""

from __future__ import annotations

import asyncio
import functools
import math
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace

import numpy as np
import prometheus_client
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from reasonperf.errors import UsageError
from reasonperf.records import TimelineSample
from reasonperf.telemetry import names
from reasonperf.telemetry.gpu import NvmlGpu
from reasonperf.telemetry.prometheus import parse_metrics
from reasonperf.telemetry.sampler import TelemetrySampler

LABELS = ["model_name", "engine"]


# --- parsing ---------------------------------------------------------------------------


def _vllm_like_text() -> str:
    """Two data-parallel engines, exposed through prometheus_client like vLLM 0.32 does."""
    reg = CollectorRegistry()
    kv = Gauge(
        "vllm:kv_cache_usage_perc", "KV", LABELS, registry=reg, multiprocess_mode="mostrecent"
    )
    running = Gauge("vllm:num_requests_running", "r", LABELS, registry=reg)
    waiting = Gauge("vllm:num_requests_waiting", "w", LABELS, registry=reg)
    by_reason = Gauge("vllm:num_requests_waiting_by_reason", "w", LABELS + ["reason"], registry=reg)
    counters = {
        name: Counter(name, name, LABELS, registry=reg)
        for name in (
            "vllm:num_preemptions",
            "vllm:prefix_cache_hits",
            "vllm:prefix_cache_queries",
            "vllm:generation_tokens",
            "vllm:prompt_tokens",
            "vllm:spec_decode_num_accepted_tokens",
            "vllm:spec_decode_num_draft_tokens",
        )
    }
    per_pos = Counter(
        "vllm:spec_decode_num_accepted_tokens_per_pos", "p", LABELS + ["position"], registry=reg
    )
    ttft = Histogram("vllm:time_to_first_token_seconds", "t", LABELS, registry=reg)
    for engine, (usage, run, wait) in enumerate([(0.25, 3, 1), (0.75, 5, 2)]):
        lv = ("tiny", str(engine))
        kv.labels(*lv).set(usage)
        running.labels(*lv).set(run)
        waiting.labels(*lv).set(wait)
        by_reason.labels(*lv, "capacity").set(100)  # a different name: must not leak in
        per_pos.labels(*lv, "0").inc(1000)
        ttft.labels(*lv).observe(0.1)
        for i, counter in enumerate(counters.values()):
            counter.labels(*lv).inc(10 * (i + 1) + engine)
    return generate_latest(reg).decode()


def test_parse_vllm_text_sums_counts_and_averages_fractions() -> None:
    values = parse_metrics(_vllm_like_text())
    assert values[names.KV_CACHE_USAGE] == pytest.approx(0.5)  # mean of 0.25 and 0.75
    assert values[names.REQUESTS_RUNNING] == 8
    assert values[names.REQUESTS_WAITING] == 3
    # counter i (0-based) holds 10*(i+1) on engine 0 and 10*(i+1)+1 on engine 1
    assert values[names.PREEMPTIONS_TOTAL] == 21
    assert values[names.PREFIX_CACHE_HITS_TOTAL] == 41
    assert values[names.PREFIX_CACHE_QUERIES_TOTAL] == 61
    assert values[names.GENERATION_TOKENS_TOTAL] == 81
    assert values[names.PROMPT_TOKENS_TOTAL] == 101
    assert values[names.SPEC_DECODE_ACCEPTED_TOKENS_TOTAL] == 121
    assert values[names.SPEC_DECODE_DRAFT_TOKENS_TOTAL] == 141
    assert set(values) <= {m.unified for m in names.ENGINE_METRICS}


def test_parse_vllm_text_from_installed_vllm() -> None:
    """vLLM's own PrometheusStatLogger, fed stats through record(), into a private registry.

    Guards the name map against the installed vLLM: if vLLM renames a metric, this fails.
    """
    loggers = pytest.importorskip("vllm.v1.metrics.loggers")
    spec_metrics = pytest.importorskip("vllm.v1.spec_decode.metrics")
    stats = pytest.importorskip("vllm.v1.metrics.stats")
    FinishReason = pytest.importorskip("vllm.v1.engine").FinishReason  # noqa: N806

    reg = CollectorRegistry()
    in_reg = functools.partial

    class Spec(spec_metrics.SpecDecodingProm):
        _counter_cls = in_reg(prometheus_client.Counter, registry=reg)

    class Logger(loggers.PrometheusStatLogger):
        _gauge_cls = in_reg(prometheus_client.Gauge, registry=reg)
        _counter_cls = in_reg(prometheus_client.Counter, registry=reg)
        _histogram_cls = in_reg(prometheus_client.Histogram, registry=reg)
        _spec_decoding_cls = Spec

    config = SimpleNamespace(
        observability_config=SimpleNamespace(
            show_hidden_metrics=False, kv_cache_metrics=False, custom_histogram_buckets=None
        ),
        model_config=SimpleNamespace(
            served_model_name="tiny", max_model_len=512, is_diffusion=False
        ),
        speculative_config=SimpleNamespace(num_speculative_tokens=2),
        kv_transfer_config=None,
        ec_transfer_config=None,
        watermark_config=None,
        lora_config=None,
    )
    logger = Logger(config, engine_indexes=[0, 1])
    for engine, usage in ((0, 0.2), (1, 0.6)):
        sched = stats.SchedulerStats(
            num_running_reqs=4 + engine, num_waiting_reqs=2, kv_cache_usage=usage
        )
        sched.prefix_cache_stats.queries = 100
        sched.prefix_cache_stats.hits = 30 + engine
        sched.spec_decoding_stats = spec_metrics.SpecDecodingStats.new(2)
        sched.spec_decoding_stats.observe_draft(num_draft_tokens=2, num_accepted_tokens=1)
        it = stats.IterationStats()
        it.num_generation_tokens = 50 + engine
        it.num_preempted_reqs = 1
        it.prompt_token_stats.total = 70
        it.time_to_first_tokens_iter = [0.25 + engine]
        it.finished_requests = [stats.FinishedRequestStats(
            finish_reason=FinishReason.STOP, e2e_latency=2.0 + engine, num_generation_tokens=5)]
        logger.record(sched, it, engine_idx=engine)

    values = parse_metrics(generate_latest(reg).decode())
    assert values[names.KV_CACHE_USAGE] == pytest.approx(0.4)
    assert values[names.REQUESTS_RUNNING] == 9
    assert values[names.REQUESTS_WAITING] == 4
    assert values[names.PREFIX_CACHE_QUERIES_TOTAL] == 200
    assert values[names.PREFIX_CACHE_HITS_TOTAL] == 61
    assert values[names.GENERATION_TOKENS_TOTAL] == 101
    assert values[names.PREEMPTIONS_TOTAL] == 2
    assert values[names.PROMPT_TOKENS_TOTAL] == 140
    assert values[names.SPEC_DECODE_DRAFT_TOKENS_TOTAL] == 4
    assert values[names.SPEC_DECODE_ACCEPTED_TOKENS_TOTAL] == 2
    # the engine's own latency histograms, for the summary's truth section
    assert values[names.TTFT_SECONDS_SUM] == pytest.approx(1.5)
    assert values[names.TTFT_SECONDS_COUNT] == 2
    assert values[names.E2E_SECONDS_SUM] == pytest.approx(5.0)
    assert values[names.E2E_SECONDS_COUNT] == 2


SGLANG_TEXT = """\
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="qwen",tp_rank="0",dp_rank="0"} 0.3
sglang:token_usage{model_name="qwen",tp_rank="0",dp_rank="1"} 0.5
# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="qwen",tp_rank="0",dp_rank="0"} 7.0
sglang:num_running_reqs{model_name="qwen",tp_rank="0",dp_rank="1"} 6.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="qwen",tp_rank="0",dp_rank="0"} 2.0
sglang:num_queue_reqs{model_name="qwen",tp_rank="0",dp_rank="1"} 0.0
# HELP sglang:cache_hit_rate The prefix cache hit rate.
# TYPE sglang:cache_hit_rate gauge
sglang:cache_hit_rate{model_name="qwen",tp_rank="0",dp_rank="0"} 0.25
# HELP sglang:prompt_tokens_total Number of prefill tokens processed.
# TYPE sglang:prompt_tokens_total counter
sglang:prompt_tokens_total{model_name="qwen"} 8.128902e+06
# HELP sglang:generation_tokens_total Number of generation tokens processed.
# TYPE sglang:generation_tokens_total counter
sglang:generation_tokens_total{model_name="qwen"} 7.557572e+06
# HELP sglang:cached_tokens_total Number of cached prompt tokens.
# TYPE sglang:cached_tokens_total counter
sglang:cached_tokens_total{model_name="qwen"} 2.0e+06
# HELP sglang:num_retracted_requests_total Total number of retracted requests.
# TYPE sglang:num_retracted_requests_total counter
sglang:num_retracted_requests_total{model_name="qwen",tp_rank="0"} 3.0
# HELP sglang:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE sglang:time_to_first_token_seconds histogram
sglang:time_to_first_token_seconds_bucket{le="0.1",model_name="qwen"} 4.0
sglang:time_to_first_token_seconds_bucket{le="+Inf",model_name="qwen"} 9.0
sglang:time_to_first_token_seconds_sum{model_name="qwen"} 3.5
sglang:time_to_first_token_seconds_count{model_name="qwen"} 9.0
"""


def test_parse_sglang_text() -> None:
    values = parse_metrics(SGLANG_TEXT)
    assert values == {
        names.KV_CACHE_USAGE: pytest.approx(0.4),
        names.REQUESTS_RUNNING: 13.0,
        names.REQUESTS_WAITING: 2.0,
        names.PREEMPTIONS_TOTAL: 3.0,
        names.PREFIX_CACHE_HITS_TOTAL: 2.0e6,
        names.PREFIX_CACHE_QUERIES_TOTAL: 8.128902e6,
        names.PROMPT_TOKENS_TOTAL: 8.128902e6,
        names.GENERATION_TOKENS_TOTAL: 7.557572e6,
        names.TTFT_SECONDS_SUM: 3.5,
        names.TTFT_SECONDS_COUNT: 9.0,
    }


def test_parse_untyped_suffixes_aliases_nan_and_unknown_names() -> None:
    text = (
        "vllm:generation_tokens_total 12\n"  # untyped, with _total
        "vllm:num_preemptions 4\n"  # untyped, without _total
        'vllm:gpu_cache_usage_perc{engine="0"} 0.5\n'  # the pre-0.10 name
        'vllm:kv_cache_usage_perc{engine="0"} NaN\n'  # unset gauge: dropped
        "vllm:gpu_prefix_cache_hits_total 5\n"  # old name, new name present below: ignored
        "vllm:prefix_cache_hits_total 7\n"
        "python_gc_objects_collected_total 99\n"
        "vllm:some_future_metric 1\n"
    )
    values = parse_metrics(text)
    assert values == {
        names.GENERATION_TOKENS_TOTAL: 12.0,
        names.PREEMPTIONS_TOTAL: 4.0,
        names.KV_CACHE_USAGE: 0.5,
        names.PREFIX_CACHE_HITS_TOTAL: 7.0,
    }
    assert parse_metrics("") == {}
    with pytest.raises(ValueError):
        parse_metrics("<html><body>Not Found</body></html>")


# --- sampler against a loopback server -------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _serve(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/metrics"


async def _poll(predicate: Callable[[], bool], deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while not predicate():
        assert time.monotonic() < end, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_clock() -> Callable[[], float]:
    start = time.perf_counter()
    return lambda: time.perf_counter() - start


def test_sampler_samples_at_absolute_ticks_until_stop() -> None:
    interval = 0.05
    batches: list[list[TimelineSample]] = []

    async def main() -> float:
        hits = 0

        async def metrics(_: web.Request) -> web.Response:
            nonlocal hits
            hits += 1
            text = (
                f'vllm:kv_cache_usage_perc{{engine="0"}} {min(hits / 10, 1.0)}\n'
                f'vllm:generation_tokens_total{{engine="0"}} {100 * hits}\n'
                f'vllm:num_requests_running{{engine="0"}} {hits % 3}\n'
            )
            return web.Response(text=text)

        runner, url = await _serve(metrics)
        clock = _run_clock()
        try:
            sampler = TelemetrySampler(url, interval, clock, batches.append, gpu=False)
            stop = asyncio.Event()
            task = asyncio.create_task(sampler.run(stop))
            await _poll(lambda: len(batches) >= 5)
            stop.set()
            await asyncio.wait_for(task, timeout=20)
            elapsed = clock()
        finally:
            await runner.cleanup()
        assert sampler.warnings == [] and sampler.notes == []
        assert hits >= len(batches)  # + the drain scrapes before the final sample
        return elapsed

    elapsed = asyncio.run(main())
    n = len(batches)
    assert n >= 6  # 5 polled for, then the one at stop
    # never more often than the ticks allow: one per tick since t0 plus the one at stop
    assert n <= math.floor(elapsed / interval) + 2
    times = [batch[0].t_s for batch in batches]
    assert times == sorted(times)
    for k, t in enumerate(times[:-1]):  # sample k is sent no earlier than tick k: no bunching
        assert t >= k * interval - 1e-3
    for batch in batches:
        assert {s.metric for s in batch} == {
            names.KV_CACHE_USAGE,
            names.GENERATION_TOKENS_TOTAL,
            names.REQUESTS_RUNNING,
        }
        assert all(s.source == names.SOURCE_ENGINE and s.t_s == batch[0].t_s for s in batch)
    tokens = [s.value for b in batches for s in b if s.metric == names.GENERATION_TOKENS_TOTAL]
    # one scrape per tick; the drains (before the baseline, until the engine shows no
    # running request, and before the final sample) may scrape in between
    assert np.diff(tokens[:-1]).tolist() == [100.0] * (n - 2)
    assert tokens[0] == 400.0  # drain scrapes 1-3 (3 shows none running), baseline 4
    assert tokens[-1] > tokens[-2]


def test_sampler_dead_endpoint_warns_once_and_never_raises() -> None:
    batches: list[list[TimelineSample]] = []
    url = f"http://127.0.0.1:{_free_port()}/metrics"

    async def main() -> TelemetrySampler:
        sampler = TelemetrySampler(url, 0.02, _run_clock(), batches.append, gpu=False)
        stop = asyncio.Event()
        task = asyncio.create_task(sampler.run(stop))
        await _poll(lambda: sampler.scrapes >= 3)
        stop.set()
        await asyncio.wait_for(task, timeout=20)
        return sampler

    sampler = asyncio.run(main())
    assert batches == []
    assert len(sampler.warnings) == 1
    assert sampler.warnings[0].startswith(f"metrics endpoint {url} failed: ")
    assert "server-side telemetry is missing" in sampler.warnings[0]


def test_sampler_recovering_and_hanging_endpoints() -> None:
    """500s then success: one warning plus a count; a hanging endpoint times out."""
    batches: list[list[TimelineSample]] = []

    async def main() -> tuple[TelemetrySampler, TelemetrySampler]:
        calls = 0
        release = asyncio.Event()

        async def flaky(_: web.Request) -> web.Response:
            nonlocal calls
            calls += 1
            if calls <= 2:
                return web.Response(status=500, text="boom")
            return web.Response(text=f"vllm:num_requests_waiting {calls}\n")

        async def hanging(_: web.Request) -> web.Response:
            await release.wait()
            return web.Response(text="")

        flaky_runner, flaky_url = await _serve(flaky)
        hang_runner, hang_url = await _serve(hanging)
        try:
            recovering = TelemetrySampler(flaky_url, 0.02, _run_clock(), batches.append, gpu=False)
            stuck = TelemetrySampler(
                hang_url, 0.02, _run_clock(), batches.append, gpu=False, timeout_s=0.1
            )
            stop = asyncio.Event()
            tasks = [asyncio.create_task(s.run(stop)) for s in (recovering, stuck)]
            await _poll(lambda: len(batches) >= 2 and stuck.scrape_failures >= 1)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=20)
        finally:
            release.set()
            await flaky_runner.cleanup()
            await hang_runner.cleanup()
        return recovering, stuck

    recovering, stuck = asyncio.run(main())
    assert all(s.metric == names.REQUESTS_WAITING for b in batches for s in b)
    assert len(recovering.warnings) == 2
    assert "HTTP 500" in recovering.warnings[0]
    assert recovering.warnings[1].endswith(f"2 of {recovering.scrapes} scrapes failed")
    assert len(stuck.warnings) == 1 and "timed out" in stuck.warnings[0]


def test_sampler_warns_when_endpoint_has_no_engine_metrics() -> None:
    async def main() -> TelemetrySampler:
        async def other(_: web.Request) -> web.Response:
            return web.Response(text="python_gc_objects_collected_total 3\n")

        runner, url = await _serve(other)
        try:
            sampler = TelemetrySampler(url, 0.02, _run_clock(), lambda _: None, gpu=False)
            stop = asyncio.Event()
            task = asyncio.create_task(sampler.run(stop))
            await _poll(lambda: sampler.scrapes >= 2)
            stop.set()
            await asyncio.wait_for(task, timeout=20)
        finally:
            await runner.cleanup()
        return sampler

    sampler = asyncio.run(main())
    assert len(sampler.warnings) == 1
    assert "without any known engine metric" in sampler.warnings[0]


def test_sampler_rejects_bad_settings() -> None:
    with pytest.raises(UsageError, match="interval"):
        TelemetrySampler(None, 0, time.perf_counter, lambda _: None)
    with pytest.raises(UsageError, match="metrics URL"):
        TelemetrySampler("localhost:8000/metrics", 1.0, time.perf_counter, lambda _: None)


# --- GPU through a stand-in NVML --------------------------------------------------------


class _NvmlError(Exception):
    pass


def _fake_pynvml(
    used: list[int], total: list[int], util: list[int], init_error: str = "",
    bus_ids: list[str] | None = None, models: list[str] | None = None,
) -> SimpleNamespace:
    """NVML over len(used) GPUs; handle i is NVML index i, at PCI bus bus_ids[i]."""
    buses = bus_ids or [f"00000000:{i + 1:02X}:00.0" for i in range(len(used))]
    kinds = models or ["NVIDIA H100"] * len(used)

    def init() -> None:
        if init_error:
            raise _NvmlError(init_error)

    return SimpleNamespace(
        NVMLError=_NvmlError,
        nvmlInit=init,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: len(used),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetHandleByUUID=lambda u: int(u.removeprefix("GPU-")),
        nvmlDeviceGetPciInfo=lambda h: SimpleNamespace(busId=buses[h].encode()),
        nvmlDeviceGetName=lambda h: kinds[h],
        nvmlDeviceGetMemoryInfo=lambda h: SimpleNamespace(used=used[h], total=total[h], free=0),
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=util[h], memory=0),
    )


def test_gpu_sums_memory_and_averages_utilisation(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_pynvml(used=[1_000, 3_000, 7_000], total=[10_000] * 3, util=[20, 60, 100])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with NvmlGpu() as gpu:
        assert gpu.available() and gpu.reason is None and gpu.device_count == 3
        assert gpu.sample() == {
            names.GPU_MEMORY_USED_BYTES: 11_000.0,
            names.GPU_MEMORY_TOTAL_BYTES: 30_000.0,
            names.GPU_UTILIZATION: pytest.approx(0.6),
        }
    assert not gpu.available() and gpu.sample() == {}

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,GPU-0")
    with NvmlGpu() as gpu:
        assert gpu.sample()[names.GPU_MEMORY_USED_BYTES] == 8_000.0
        assert gpu.sample()[names.GPU_UTILIZATION] == pytest.approx(0.6)


def test_gpu_unavailable_gives_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    gpu = NvmlGpu()
    assert not gpu.available() and "nvidia-ml-py" in (gpu.reason or "")

    monkeypatch.setitem(
        sys.modules, "pynvml", _fake_pynvml([], [], [], init_error="Driver Not Loaded")
    )
    gpu = NvmlGpu()
    assert not gpu.available() and "Driver Not Loaded" in (gpu.reason or "")

    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml([], [], []))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpu = NvmlGpu()
    assert not gpu.available() and "no GPU" in (gpu.reason or "")


def test_sampler_gpu_only_and_gpu_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml([5], [10], [50]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    batches: list[list[TimelineSample]] = []

    async def main(sampler: TelemetrySampler, want: int) -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(sampler.run(stop))
        await _poll(lambda: len(batches) >= want)
        stop.set()
        await asyncio.wait_for(task, timeout=20)

    with_gpu = TelemetrySampler(None, 0.02, _run_clock(), batches.append, gpu=True)
    asyncio.run(main(with_gpu, want=2))
    assert with_gpu.warnings == [] and with_gpu.notes == []
    assert len(batches) >= 3
    assert all(s.source == names.SOURCE_GPU for b in batches for s in b)
    assert {s.metric: s.value for s in batches[0]} == {
        names.GPU_MEMORY_USED_BYTES: 5.0,
        names.GPU_MEMORY_TOTAL_BYTES: 10.0,
        names.GPU_UTILIZATION: 0.5,
    }

    monkeypatch.setitem(sys.modules, "pynvml", None)
    batches.clear()
    without = TelemetrySampler(None, 0.02, _run_clock(), batches.append, gpu=True)
    asyncio.run(main(without, want=0))
    assert batches == [] and without.warnings == []
    assert len(without.notes) == 1 and "GPU telemetry off" in without.notes[0]


# --- which GPUs: the engine's, in CUDA's order, and only for an engine launched here -------


def test_gpu_reads_the_engine_env_not_the_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml([1, 20, 300], [10**4] * 3, [0] * 3))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # the client's own setting
    with NvmlGpu(env={"CUDA_VISIBLE_DEVICES": "1,2"}) as gpu:
        assert gpu.sample()[names.GPU_MEMORY_USED_BYTES] == 320.0
        assert gpu.bus_ids == ["00000000:02:00.0", "00000000:03:00.0"]


def test_gpu_indexes_follow_pci_bus_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # NVML's index 0 sits at the highest bus id here; CUDA with PCI_BUS_ID counts by bus.
    fake = _fake_pynvml([1, 20, 300], [10**4] * 3, [0] * 3,
                        bus_ids=["00000000:C1:00.0", "00000000:41:00.0", "00000000:01:00.0"])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    env = {"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    with NvmlGpu(env=env) as gpu:
        assert gpu.sample()[names.GPU_MEMORY_USED_BYTES] == 300.0
        assert gpu.bus_ids == ["00000000:01:00.0"]
    # same models: CUDA's default FASTEST_FIRST order is the bus order too
    with NvmlGpu(env={"CUDA_VISIBLE_DEVICES": "1"}) as gpu:
        assert gpu.sample()[names.GPU_MEMORY_USED_BYTES] == 20.0


def test_gpu_mixed_models_without_pci_order_are_not_guessed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _fake_pynvml([1, 20], [10**4] * 2, [0] * 2, models=["NVIDIA H100", "NVIDIA A10"])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpu = NvmlGpu(env={"CUDA_VISIBLE_DEVICES": "1"})
    assert not gpu.available()
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in (gpu.reason or "")
    with NvmlGpu(env={"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}) as ok:
        assert ok.sample()[names.GPU_MEMORY_USED_BYTES] == 20.0
