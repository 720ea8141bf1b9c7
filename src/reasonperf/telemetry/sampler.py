"""Server-side telemetry beside the load: engine /metrics and GPU memory every interval.

Telemetry is evidence, not a precondition: a missing, slow or failing endpoint becomes
one warning and the sampler keeps trying; it never raises into the run.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable, Mapping

import aiohttp

from reasonperf.errors import UsageError
from reasonperf.records import TimelineSample
from reasonperf.telemetry.gpu import NvmlGpu
from reasonperf.telemetry.names import (
    REQUESTS_RUNNING,
    REQUESTS_WAITING,
    SOURCE_ENGINE,
    SOURCE_GPU,
)
from reasonperf.telemetry.prometheus import scrape


class TelemetrySampler:
    """Samples at absolute ticks ``t0 + k * interval_s`` (no drift), plus once at stop.

    ``clock`` is the run's clock (seconds since the run's start); sample times come from
    it and the ticks are scheduled on it. A scrape still running at a tick makes that
    tick skipped, never queued. Each tick's samples go to ``sink`` in one call.
    ``warnings`` collects problems the run should show; ``notes`` collects facts about
    what was not measured (no GPU on this machine).
    """

    def __init__(
        self,
        metrics_url: str | None,
        interval_s: float,
        clock: Callable[[], float],
        sink: Callable[[list[TimelineSample]], None],
        gpu: bool = True,
        timeout_s: float = 2.0,
        gpu_env: Mapping[str, str] | None = None,  # the engine's CUDA_* env; None: ours
    ) -> None:
        if not (interval_s > 0 and math.isfinite(interval_s)):
            raise UsageError(
                f"telemetry interval must be a positive number of seconds, got {interval_s!r};"
                " pass e.g. --telemetry-interval 0.5"
            )
        if metrics_url is not None and not metrics_url.startswith(("http://", "https://")):
            raise UsageError(
                f"metrics URL {metrics_url!r} is not http(s); give e.g. http://host:8000/metrics"
            )
        self.metrics_url = metrics_url
        self.interval_s = float(interval_s)
        self.timeout_s = float(timeout_s)
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self._clock = clock
        self._sink = sink
        self._want_gpu = gpu
        self._gpu_env = gpu_env
        self._gpu: NvmlGpu | None = None
        # Set once the first sample is in (or sampling is impossible): the runner starts
        # the load only then, so counter deltas have a baseline taken before any request.
        self.ready = asyncio.Event()
        self.drain_timeout_s = 3.0
        self._scrapes = 0
        self._scrape_failures = 0
        self._warned_endpoint = False
        self._warned_empty = False
        self._warned_gpu = False

    @property
    def scrapes(self) -> int:
        """/metrics requests made so far."""
        return self._scrapes

    @property
    def scrape_failures(self) -> int:
        """/metrics requests that gave no samples (error, timeout, unparsable text)."""
        return self._scrape_failures

    async def run(self, stop: asyncio.Event) -> None:
        """Sample now, then at every tick until ``stop`` is set, then once more."""
        if self._want_gpu:
            gpu = await asyncio.to_thread(functools.partial(NvmlGpu, env=self._gpu_env))
            if gpu.available():
                self._gpu = gpu
            elif gpu.reason:
                self.notes.append(gpu.reason)
        if self.metrics_url is None and self._gpu is None:
            self.ready.set()
            await stop.wait()
            return
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                # The baseline too waits for an idle engine: a request still finishing
                # (the continuous-usage probe) would otherwise land in the run's deltas.
                await self._drain(session)
                t0 = self._clock()
                tick = 0
                while True:
                    await self._sample(session)
                    self.ready.set()
                    # Next tick strictly after now: a slow scrape skips ticks, never bunches them.
                    elapsed = self._clock() - t0
                    tick = max(tick + 1, math.floor(elapsed / self.interval_s) + 1)
                    delay = t0 + tick * self.interval_s - self._clock()
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=max(delay, 0.0))
                        break
                    except TimeoutError:
                        continue
                await self._drain(session)
                await self._sample(session)
        finally:
            self.ready.set()
            if self._gpu is not None:
                self._gpu.close()
                self._gpu = None
            self._summarize_failures()

    async def _drain(self, session: aiohttp.ClientSession) -> None:
        """Before the first and the final sample, wait (bounded) until the engine shows no running or
        waiting request: its counters are updated a step after the last token is sent,
        and a final sample taken too early would under-count the run."""
        if self.metrics_url is None or self._warned_endpoint:
            return
        deadline = self._clock() + self.drain_timeout_s
        while self._clock() < deadline:
            self._scrapes += 1
            try:
                values = await scrape(session, self.metrics_url)
            except Exception:
                self._scrape_failures += 1
                return
            if not values.get(REQUESTS_RUNNING) and not values.get(REQUESTS_WAITING):
                return
            await asyncio.sleep(0.05)

    async def _sample(self, session: aiohttp.ClientSession) -> None:
        tasks = []
        if self.metrics_url is not None:
            tasks.append(self._engine_samples(session, self.metrics_url))
        if self._gpu is not None:
            tasks.append(self._gpu_samples(self._gpu))
        batches = await asyncio.gather(*tasks)
        samples = [s for batch in batches for s in batch]
        if samples:
            self._sink(samples)

    async def _engine_samples(
        self, session: aiohttp.ClientSession, url: str
    ) -> list[TimelineSample]:
        self._scrapes += 1
        sent = self._clock()
        try:
            values = await scrape(session, url)
        except Exception as exc:  # HTTP, timeout, connection, unparsable text: all the same
            self._scrape_failures += 1
            if not self._warned_endpoint:
                self._warned_endpoint = True
                self.warnings.append(
                    f"metrics endpoint {url} failed: {_reason(exc)};"
                    " server-side telemetry is missing for this run"
                )
            return []
        # The server rendered the page somewhere between send and receipt.
        t_s = (sent + self._clock()) / 2.0
        if not values and not self._warned_empty:
            self._warned_empty = True
            self.warnings.append(
                f"metrics endpoint {url} answered without any known engine metric"
                " (vllm:* or sglang:*); server-side telemetry is missing for this run"
            )
        return [TimelineSample(t_s, SOURCE_ENGINE, name, v) for name, v in values.items()]

    async def _gpu_samples(self, gpu: NvmlGpu) -> list[TimelineSample]:
        sent = self._clock()
        try:
            values = await asyncio.to_thread(gpu.sample)
        except Exception as exc:  # any NVMLError: the GPU may come back, keep trying
            if not self._warned_gpu:
                self._warned_gpu = True
                self.warnings.append(
                    f"GPU sampling failed: {_reason(exc)}; GPU telemetry has gaps for this run"
                )
            return []
        t_s = (sent + self._clock()) / 2.0
        return [TimelineSample(t_s, SOURCE_GPU, name, v) for name, v in values.items()]

    def _summarize_failures(self) -> None:
        failed, total = self._scrape_failures, self._scrapes
        if 0 < failed < total:
            self.warnings.append(
                f"metrics endpoint {self.metrics_url}: {failed} of {total} scrapes failed"
            )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status} {exc.message}".strip()
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
