"""A fake OpenAI-compatible streaming server for tests (aiohttp.web in a background thread).

``with FakeServer(Programme(ttft_s=0.2, itl_s=0.01)) as srv:`` serves on a free port of
127.0.0.1: /v1/models, /health, /v1/chat/completions, /v1/completions and a vLLM-style
/metrics reflecting its live state. A request body field ``"fake": {...}`` (Programme
keys) overrides the server-wide programme for that request.

Token timing uses absolute deadlines on the loop clock (request receipt + ttft_s +
i * itl_s for token i), so oversleeping never accumulates. Every token is a five-letter
word with a leading space (equal lengths keep character-based apportioning exact).
Faults are drawn per request from one seeded RNG (one uniform draw walked over the
cumulative probabilities, so at most one fault per request).
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

VARIANTS = ("reasoning", "reasoning_content", "reasoning_details", "think_tags",
            "think_open_only", "none")
FAULTS = ("http429", "http500", "cut", "malformed", "hang")
REASONING_WORDS = ("think", "check", "maybe", "given", "hence", "where", "first", "units")
ANSWER_WORDS = ("final", "value", "equal", "after", "plain", "clear", "exact", "sound")


@dataclass
class Programme:
    ttft_s: float = 0.02
    itl_s: float = 0.002
    reasoning_tokens: int = 30
    answer_tokens: int = 20
    tokens_per_chunk: int = 1
    variant: str = "reasoning"
    usage: bool = True  # honour stream_options.include_usage
    usage_details: bool = False  # add usage.completion_tokens_details.reasoning_tokens
    continuous_usage: bool = True  # False: answer 400 to continuous_usage_stats
    # True: the usage rides on the last content chunk only (no continuous usage, no
    # separate usage chunk), as some servers do
    usage_on_last_chunk: bool = False
    final_usage_skew: int = 0  # added to the final usage's completion_tokens (a lying server)
    no_usage_every: int = 0  # k > 0: every k-th request received gets no usage at all
    faults: dict[str, float] = field(default_factory=dict)  # fault kind -> probability
    fault_after: int = 10  # tokens sent before a cut / malformed / hang fault
    jitter: float = 0.0  # per-request lognormal sigma scaling ttft_s and itl_s (seeded RNG)
    retry_after: str | None = None  # Retry-After header value sent with http429 faults
    api_key: str | None = None  # require "Authorization: Bearer <api_key>", else 401
    json_answer: bool = False  # answer one application/json completion instead of a stream
    # a body field (dotted) this server honours as a thinking budget: the reasoning stops
    # at it; None: any budget field is ignored (a server that cannot honour one)
    budget_field: str | None = None
    # honour min_tokens / ignore_eos (forced lengths); False: stop at the natural end
    forced_lengths: bool = True

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {FAULTS}")
        if self.jitter < 0:
            raise ValueError("jitter must be >= 0")
        if sum(self.faults.values()) > 1 + 1e-9:
            raise ValueError("fault probabilities must sum to at most 1")
        if self.tokens_per_chunk < 1:
            raise ValueError("tokens_per_chunk must be >= 1")


class FakeServer:
    def __init__(
        self,
        programme: Programme | None = None,
        model: str = "fake-model",
        seed: int = 0,
        kv_capacity_tokens: int = 20_000,
    ) -> None:
        self.programme = programme or Programme()
        self.model = model
        self.kv_capacity_tokens = kv_capacity_tokens
        self._rng = random.Random(seed)
        # counters for tests (written on the server thread, read anywhere)
        self.requests_received = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.faults_injected: Counter[str] = Counter()
        # live engine state behind /metrics
        self.waiting = 0
        self.running = 0
        self.kv_tokens = 0
        self.generation_tokens_total = 0
        self.prompt_tokens_total = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._registry = CollectorRegistry()
        self._registry.register(_MetricsCollector(self))

    # --- lifecycle -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def __enter__(self) -> FakeServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake server did not start within 10 s")
        if self._start_error is not None:
            raise RuntimeError("fake server failed to start") from self._start_error

    def stop(self) -> None:
        self._stopping = True
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            runner = loop.run_until_complete(self._setup())
        except BaseException as e:  # reported to the starting thread
            self._start_error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_until_complete(self._stop.wait())  # type: ignore[union-attr]
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _setup(self) -> web.AppRunner:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/fake/stats", self._stats)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        return runner

    # --- simple endpoints ------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def _models(self, request: web.Request) -> web.Response:
        data = {"object": "list", "data": [{"id": self.model, "object": "model",
                                            "owned_by": "fake"}]}
        return _json(200, data)

    async def _stats(self, request: web.Request) -> web.Response:
        """The test counters, for a server running in its own process (bench/soak.py)."""
        return _json(200, {"requests_received": self.requests_received,
                           "in_flight": self.in_flight,
                           "faults_injected": dict(self.faults_injected)})

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self._registry),
                            headers={"Content-Type": "text/plain; version=0.0.4"})

    # --- generation ------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, chat=True)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, chat=False)

    async def _handle(self, request: web.Request, chat: bool) -> web.StreamResponse:
        start = asyncio.get_running_loop().time()
        self.requests_received += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._generate(request, chat, start)
        finally:
            self.in_flight -= 1

    async def _generate(self, request: web.Request, chat: bool, start: float
                        ) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "request body is not JSON")
        if body.get("model") != self.model:
            return _error(404, f"The model `{body.get('model')}` does not exist.")
        if not body.get("stream"):
            return _error(400, "the fake server only streams (stream=true)")
        try:
            prog = replace(self.programme, **(body.get("fake") or {}))
        except (TypeError, ValueError) as e:
            return _error(400, f"bad fake programme: {e}")
        opts = body.get("stream_options") or {}
        if opts.get("continuous_usage_stats") and not prog.continuous_usage:
            return _error(400, "continuous_usage_stats is not supported")
        if prog.api_key is not None and request.headers.get("Authorization") != f"Bearer {prog.api_key}":
            return _error(401, "invalid API key")
        if prog.json_answer:
            return _json(200, {"id": "cmpl-json", "object": "chat.completion", "model": self.model,
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": "hi"}}]})
        fault = self._draw_fault(prog)
        if fault == "http429":
            resp = _error(429, "rate limited")
            if prog.retry_after is not None:
                resp.headers["Retry-After"] = prog.retry_after
            return resp
        if fault == "http500":
            return _error(500, "internal server error")
        if prog.no_usage_every and self.requests_received % prog.no_usage_every == 0:
            prog = replace(prog, usage=False)  # a server that ignores stream_options here
        if prog.jitter > 0:
            factor = self._rng.lognormvariate(0.0, prog.jitter)
            prog = replace(prog, ttft_s=prog.ttft_s * factor, itl_s=prog.itl_s * factor)
        job = _Job(self, prog, body, chat, start, fault)
        return await job.run(request)

    def _draw_fault(self, prog: Programme) -> str | None:
        if not prog.faults:
            return None
        u = self._rng.random()
        acc = 0.0
        for kind in FAULTS:
            acc += prog.faults.get(kind, 0.0)
            if u < acc:
                self.faults_injected[kind] += 1
                return kind
        return None


class _Job:
    """One streamed response."""

    def __init__(self, srv: FakeServer, prog: Programme, body: dict[str, Any], chat: bool,
                 start: float, fault: str | None) -> None:
        self.srv = srv
        self.prog = prog
        self.chat = chat
        self.start = start
        self.fault = fault
        opts = body.get("stream_options") or {}
        self.usage_last = prog.usage and prog.usage_on_last_chunk and bool(
            opts.get("include_usage"))
        self.include_usage = (prog.usage and bool(opts.get("include_usage"))
                              and not prog.usage_on_last_chunk)
        self.continuous = (prog.usage and bool(opts.get("continuous_usage_stats"))
                           and not prog.usage_on_last_chunk)
        self.n_reason = 0 if prog.variant == "none" else prog.reasoning_tokens
        budget = _dotted(body, prog.budget_field) if prog.budget_field else None
        if budget is not None:
            self.n_reason = min(self.n_reason, int(budget))
        total = self.n_reason + prog.answer_tokens
        max_tokens = body.get("max_tokens")
        if prog.forced_lengths:
            if body.get("ignore_eos") and max_tokens is not None:
                total = max(total, max_tokens)
            total = max(total, int(body.get("min_tokens") or 0))
        self.n = min(total, max_tokens) if max_tokens is not None else total
        self.finish = "length" if self.n < total else "stop"
        text = body.get("prompt") or " ".join(m.get("content", "") for m in body["messages"])
        self.prompt_tokens = max(1, len(text.split()))
        variant = prog.variant
        if not chat and variant in ("reasoning", "reasoning_content", "reasoning_details"):
            variant = "think_tags"  # the completions API has no reasoning field
        self.variant = variant
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{srv.requests_received}"
        self.created = int(time.time())

    async def run(self, request: web.Request) -> web.StreamResponse:
        srv = self.srv
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        try:
            await resp.prepare(request)
        except ConnectionResetError:
            return resp  # the client left before the headers (Ctrl-C, its timeout)
        loop = asyncio.get_running_loop()
        srv.waiting += 1
        srv.prompt_tokens_total += self.prompt_tokens
        phase = "waiting"
        sent = 0
        try:
            k = self.prog.tokens_per_chunk
            for lo in range(0, self.n, k):
                hi = min(lo + k, self.n)
                if self.fault in ("cut", "malformed", "hang") and lo >= self.prog.fault_after:
                    if await self._inject(request, resp):
                        return resp
                delay = self.start + self.prog.ttft_s + (hi - 1) * self.prog.itl_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                out = b""
                if phase == "waiting":
                    srv.waiting -= 1
                    srv.running += 1
                    srv.kv_tokens += self.prompt_tokens
                    phase = "running"
                    if self.chat:
                        out += self._event({"role": "assistant", "content": ""}, None, 0)
                finish = self.finish if hi == self.n else None
                out += self._event(self._delta(lo, hi), finish, hi)
                await resp.write(out)
                srv.generation_tokens_total += hi - lo
                srv.kv_tokens += hi - lo
                sent = hi
            tail = b""
            if self.include_usage:
                tail += _sse({"id": self.id, "object": self._object, "created": self.created,
                              "model": srv.model, "choices": [],
                              "usage": self._usage(sent, final=True)})
            tail += b"data: [DONE]\n\n"
            await resp.write(tail)
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client went away (its timeout or its own error handling)
        finally:
            if phase == "waiting":
                srv.waiting -= 1
            else:
                srv.running -= 1
                srv.kv_tokens -= self.prompt_tokens + sent
        return resp

    async def _inject(self, request: web.Request, resp: web.StreamResponse) -> bool:
        """Apply a mid-stream fault; True when the response must end here."""
        if self.fault == "malformed":
            self.fault = None  # once; then carry on as if nothing happened
            await resp.write(b'data: {"choices": [{"delta": {"content": oops\n\n')
            return False
        if self.fault == "cut":
            if request.transport is not None:
                request.transport.close()
            return True
        # hang: send nothing more, keep the socket open until the client leaves
        while not self.srv._stopping:
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            await asyncio.sleep(0.02)
        return True

    @property
    def _object(self) -> str:
        return "chat.completion.chunk" if self.chat else "text_completion"

    def _delta(self, lo: int, hi: int) -> dict[str, Any]:
        reasoning = "".join(self._word(i) for i in range(lo, min(hi, self.n_reason)))
        answer = "".join(self._word(i) for i in range(max(lo, self.n_reason), hi))
        v = self.variant
        if v in ("think_tags", "think_open_only"):
            return {"content": reasoning + answer}
        delta: dict[str, Any] = {}
        if reasoning:
            if v == "reasoning_details":
                delta["reasoning_details"] = [{"type": "reasoning.text", "text": reasoning}]
            else:
                delta[v] = reasoning
        if answer:
            delta["content"] = answer
        return delta

    def _word(self, i: int) -> str:
        if i < self.n_reason:
            word = " " + REASONING_WORDS[i % len(REASONING_WORDS)]
            if i == 0 and self.variant == "think_tags":
                word = "<think>" + word
            return word
        word = " " + ANSWER_WORDS[(i - self.n_reason) % len(ANSWER_WORDS)]
        if i == self.n_reason and self.variant in ("think_tags", "think_open_only"):
            opened = "<think>" if self.variant == "think_tags" and self.n_reason == 0 else ""
            word = opened + "</think>" + word
        return word

    def _usage(self, completion: int, final: bool = False) -> dict[str, Any]:
        if final:
            completion += self.prog.final_usage_skew
        usage: dict[str, Any] = {"prompt_tokens": self.prompt_tokens,
                                 "completion_tokens": completion,
                                 "total_tokens": self.prompt_tokens + completion}
        if self.prog.usage_details:
            usage["completion_tokens_details"] = {"reasoning_tokens": min(self.n_reason,
                                                                          completion)}
        return usage

    def _event(self, delta: dict[str, Any], finish: str | None, completion: int) -> bytes:
        if self.chat:
            choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None,
                                      "finish_reason": finish}
        else:
            choice = {"index": 0, "text": delta.get("content", ""), "logprobs": None,
                      "finish_reason": finish}
        obj: dict[str, Any] = {"id": self.id, "object": self._object, "created": self.created,
                               "model": self.srv.model, "choices": [choice]}
        if self.continuous:
            obj["usage"] = self._usage(completion)
        elif self.usage_last and finish:
            obj["usage"] = self._usage(completion, final=True)
        return _sse(obj)


class _MetricsCollector:
    """vLLM-style Prometheus families computed from the server's live state per scrape."""

    def __init__(self, srv: FakeServer) -> None:
        self.srv = srv

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        srv = self.srv
        labels = [srv.model]
        gauges = {
            "vllm:kv_cache_usage_perc": min(1.0, srv.kv_tokens / srv.kv_capacity_tokens),
            "vllm:num_requests_running": srv.running,
            "vllm:num_requests_waiting": srv.waiting,
        }
        for name, value in gauges.items():
            g = GaugeMetricFamily(name, name, labels=["model_name"])
            g.add_metric(labels, float(value))
            yield g
        counters = {
            "vllm:num_preemptions": 0,
            "vllm:generation_tokens": srv.generation_tokens_total,
            "vllm:prompt_tokens": srv.prompt_tokens_total,
        }
        for name, value in counters.items():
            c = CounterMetricFamily(name, name, labels=["model_name"])
            c.add_metric(labels, float(value))
            yield c


def _dotted(body: dict[str, Any], path: str) -> Any:
    """body["a"]["b"] for path "a.b"; None when any part is missing."""
    value: Any = body
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def _json(status: int, obj: Any) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj),
                        content_type="application/json")


def _error(status: int, message: str) -> web.Response:
    return _json(status, {"error": {"message": message, "type": "FakeServerError",
                                    "code": status}})


def main() -> None:
    """Run the fake server in its own process (benchmarks and timing tests keep it off the
    client's core): ``python -m tests.fake_server --itl 0 --answer-tokens 2000``. Prints
    its base URL on one line, then serves until killed."""
    import argparse
    import signal
    import time

    ap = argparse.ArgumentParser()
    ap.add_argument("--ttft", type=float, default=0.0)
    ap.add_argument("--itl", type=float, default=0.0)
    ap.add_argument("--reasoning-tokens", type=int, default=0)
    ap.add_argument("--answer-tokens", type=int, default=100)
    ap.add_argument("--tokens-per-chunk", type=int, default=1)
    ap.add_argument("--fault-rate", type=float, default=0.0,
                    help="probability of each fault kind (0.1: 10 %% of each of FAULTS)")
    ap.add_argument("--fault-after", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    faults = {kind: args.fault_rate for kind in FAULTS} if args.fault_rate else {}
    prog = Programme(ttft_s=args.ttft, itl_s=args.itl, reasoning_tokens=args.reasoning_tokens,
                     answer_tokens=args.answer_tokens, tokens_per_chunk=args.tokens_per_chunk,
                     faults=faults, fault_after=args.fault_after)
    srv = FakeServer(prog, seed=args.seed)
    srv.start()
    print(srv.base_url, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: srv.stop())
    try:
        while srv._thread is not None and srv._thread.is_alive():
            time.sleep(0.2)
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":
    main()
