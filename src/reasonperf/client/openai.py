"""One streaming request to an OpenAI-compatible server -> one RequestRecord + its chunks.

Times come from the caller's run clock: ``sent_s`` when the request's headers are written
(after any wait for a pooled connection, which is ``pool_wait_s``), each
piece's time when its bytes arrive. The reasoning/answer classification happens after the
stream ends (see :mod:`reasonperf.client.split`) and changes no timing.

Errors never raise: they become a record with status "error", an ``error_type`` and a
one-line message, keeping whatever was received. No retries (a retry would hide the
failure from the measurement). Cancellation is recorded, handed to ``on_cancel`` and
re-raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import orjson

from reasonperf.client.split import Piece, classify, split_tokens, thinking_truncated
from reasonperf.client.sse import SSEEvent, SSEParser
from reasonperf.errors import UsageError
from reasonperf.records import ChunkEvent, RequestPlan, RequestRecord

APIS = {"chat": "/chat/completions", "completions": "/completions"}
_DONE = b"[DONE]"
_MAX_MESSAGE = 200
_DRAIN_S = 0.5  # after [DONE], how long to wait for the body's end (to reuse the connection)
PROBE_TOKENS = 4  # the continuous-usage probe needs more than one content chunk

CancelFn = Callable[[RequestRecord, list[ChunkEvent]], None]


@dataclass
class EndpointConfig:
    base_url: str  # e.g. "http://127.0.0.1:8000/v1"
    model: str
    api: str = "chat"  # "chat" -> /chat/completions, "completions" -> /completions
    api_key: str | None = field(default=None, repr=False)  # never logged or stored
    timeout_s: float = 600.0  # per request, total
    continuous_usage: bool = False  # ask stream_options.continuous_usage_stats
    store_text: bool = True
    extra_body: dict[str, Any] = field(default_factory=dict)
    tokenizer: Callable[[str], int] | None = None  # counts tokens of a text, optional
    # The rendered prompt ends in <think> (chat template or completions prompt): tagless
    # content is reasoning until </think>. Decided per run (see client.think_open).
    prompt_opens_think: bool = False

    def __post_init__(self) -> None:
        if self.api not in APIS:
            raise UsageError(f"api must be one of {sorted(APIS)}, got {self.api!r}")
        if not self.base_url.startswith(("http://", "https://")):
            raise UsageError(
                f"base_url must start with http:// or https:// (e.g. http://127.0.0.1:8000/v1),"
                f" got {self.base_url!r}"
            )
        if not self.timeout_s > 0:
            raise UsageError(f"timeout_s must be > 0, got {self.timeout_s!r}")

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + APIS[self.api]


def make_session(concurrency: int | None = None) -> aiohttp.ClientSession:
    """A session whose connection pool fits ``concurrency`` streams (None: no cap, for an
    open loop that offers as many streams as its schedule says). No session-wide timeout:
    each request has its own total deadline. Call inside the running loop.

    The session traces each request (see :class:`RequestTiming`): ``sent_s`` is stamped
    when the request's headers are written, and time spent waiting for a free pooled
    connection is recorded as ``pool_wait_s``, so neither is hidden in TTFT or E2E."""
    if concurrency is not None and concurrency < 1:
        raise UsageError(f"concurrency must be >= 1, got {concurrency}")
    connector = aiohttp.TCPConnector(limit=concurrency or 0, limit_per_host=0, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_read=None, sock_connect=None)
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, trace_configs=[_timing_trace_config()]
    )


class RequestTiming:
    """Per-request times filled by the session's trace hooks (request setup, not the
    per-chunk path): when the headers went out, and how long the request waited for a
    pooled connection."""

    __slots__ = ("clock", "sent_s", "pool_wait_s", "_queued_at")

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.sent_s: float | None = None
        self.pool_wait_s = 0.0
        self._queued_at: float | None = None


def _timing_trace_config() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_connection_queued_start.append(_on_queued_start)
    trace.on_connection_queued_end.append(_on_queued_end)
    trace.on_request_headers_sent.append(_on_headers_sent)
    return trace


def _timing(ctx: Any) -> RequestTiming | None:
    timing = getattr(ctx, "trace_request_ctx", None)
    return timing if isinstance(timing, RequestTiming) else None


async def _on_queued_start(session: aiohttp.ClientSession, ctx: Any, params: Any) -> None:
    timing = _timing(ctx)
    if timing is not None:
        timing._queued_at = timing.clock()


async def _on_queued_end(session: aiohttp.ClientSession, ctx: Any, params: Any) -> None:
    timing = _timing(ctx)
    if timing is not None and timing._queued_at is not None:
        timing.pool_wait_s += timing.clock() - timing._queued_at
        timing._queued_at = None


async def _on_headers_sent(session: aiohttp.ClientSession, ctx: Any, params: Any) -> None:
    timing = _timing(ctx)
    if timing is not None and timing.sent_s is None:
        timing.sent_s = timing.clock()


def messages_to_prompt(messages: list[dict[str, str]]) -> str:
    """The completions API takes one prompt: the message contents joined by blank lines."""
    return "\n\n".join(m.get("content", "") for m in messages)


def build_body(cfg: EndpointConfig, plan: RequestPlan) -> dict[str, Any]:
    body: dict[str, Any] = {"model": cfg.model}
    if cfg.api == "chat":
        body["messages"] = plan.messages
    else:
        body["prompt"] = messages_to_prompt(plan.messages)
    body["stream"] = True
    opts: dict[str, bool] = {"include_usage": True}
    if cfg.continuous_usage:
        opts["continuous_usage_stats"] = True
    body["stream_options"] = opts
    for key in ("max_tokens", "temperature", "top_p", "seed"):
        value = getattr(plan, key)
        if value is not None:
            body[key] = value
    body.update(cfg.extra_body)
    body.update(plan.extra_body)
    return body


def _headers(cfg: EndpointConfig) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if cfg.api_key:
        headers["Authorization"] = f"Bearer {cfg.api_key}"
    return headers


class _StreamError(Exception):
    def __init__(
        self, error_type: str, message: str, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.retry_after_s = retry_after_s


class _Stream:
    """What one response has delivered so far. Pure (no IO), so it can be benchmarked."""

    __slots__ = (
        "chat",
        "pieces",
        "done",
        "finish_reason",
        "prompt_tokens",
        "completion_tokens",
        "usage_reasoning_tokens",
        "chunk_usage",
        "_prev_completion",
    )

    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.pieces: list[Piece] = []
        self.done = False
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.usage_reasoning_tokens: int | None = None
        self.chunk_usage = False  # usage seen on a chunk with choices: per-chunk counts
        self._prev_completion = 0

    def on_event(self, ev: SSEEvent, t: float) -> None:
        data = ev.data
        if data == _DONE or ev.is_done:
            self.done = True
            return
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise _StreamError("malformed", f"unparseable event: {_snippet(data)}") from None
        try:
            self._on_object(obj, t)
        except (TypeError, AttributeError, KeyError, IndexError, ValueError):
            raise _StreamError("malformed", f"unexpected event shape: {_snippet(data)}") from None

    def _on_object(self, obj: dict[str, Any], t: float) -> None:
        err = obj.get("error")
        if err:
            raise _StreamError("server_error", _error_text(err))
        choices = obj.get("choices")
        usage = obj.get("usage")
        n_tokens = None
        if usage:
            ct = usage.get("completion_tokens")
            if choices:
                self.chunk_usage = True
            if ct is not None:
                # Only a chunk with choices has a count of its own. A gap between the
                # last of them and the final usage chunk is a disagreement for the token
                # check, never a phantom chunk.
                if choices:
                    n_tokens = ct - self._prev_completion
                    self._prev_completion = ct
                self.completion_tokens = ct
            pt = usage.get("prompt_tokens")
            if pt is not None:
                self.prompt_tokens = pt
            details = usage.get("completion_tokens_details")
            if details:
                rt = details.get("reasoning_tokens")
                if rt is not None:
                    self.usage_reasoning_tokens = rt
        if not choices:
            return
        choice = choices[0]
        fr = choice.get("finish_reason")
        if fr:
            self.finish_reason = fr
        if self.chat:
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning") or delta.get("reasoning_content")
            if not reasoning:
                details = delta.get("reasoning_details")
                if details:
                    reasoning = "".join(
                        d.get("text") or d.get("summary") or "" for d in details
                    )
            content = delta.get("content")
        else:
            reasoning = None
            content = choice.get("text")
        if reasoning and content:
            total = len(reasoning) + len(content)
            n_r = None if n_tokens is None else round(n_tokens * len(reasoning) / total)
            self.pieces.append(Piece(t, "reasoning", reasoning, n_r))
            n_c = None if n_tokens is None else n_tokens - n_r  # type: ignore[operator]
            self.pieces.append(Piece(t, "content", content, n_c))
        elif reasoning:
            self.pieces.append(Piece(t, "reasoning", reasoning, n_tokens))
        elif content or n_tokens:
            self.pieces.append(Piece(t, "content", content or "", n_tokens))


async def send_request(
    session: aiohttp.ClientSession,
    cfg: EndpointConfig,
    plan: RequestPlan,
    clock: Callable[[], float],
    run_id: str,
    *,
    on_cancel: CancelFn | None = None,
) -> tuple[RequestRecord, list[ChunkEvent]]:
    """Stream one request; return its record and chunk events. Never raises for request
    failures; on cancellation calls ``on_cancel(record, chunks)`` and re-raises."""
    record = _new_record(plan, run_id)
    stream = _Stream(chat=cfg.api == "chat")
    payload = orjson.dumps(build_body(cfg, plan))
    headers = _headers(cfg)
    timing = RequestTiming(clock)
    error: tuple[str, str] | None = None
    try:
        async with asyncio.timeout(cfg.timeout_s):
            async with session.post(
                cfg.url, data=payload, headers=headers, trace_request_ctx=timing
            ) as resp:
                record.http_status = resp.status
                await _check_response(resp)
                parser = SSEParser()
                feed = parser.feed
                on_event = stream.on_event
                async for data in resp.content.iter_any():
                    t = clock()
                    for ev in feed(data):
                        on_event(ev, t)
                        if stream.done:
                            break
                    if stream.done:
                        record.done_s = t
                        await _drain(resp)
                        break
                else:
                    t = clock()
                    for ev in parser.close():
                        on_event(ev, t)
                    if not stream.done and stream.finish_reason is None:
                        raise _StreamError("disconnect", "stream ended before [DONE]")
    except _StreamError as e:
        error = (e.error_type, e.message)
        record.retry_after_s = e.retry_after_s
    except TimeoutError:
        if not stream.done:  # a deadline hit while draining after [DONE] is no failure
            error = ("timeout", f"no complete response within timeout_s={cfg.timeout_s:g}")
    except (aiohttp.ClientConnectorError, aiohttp.InvalidURL) as e:
        error = ("connect", f"{type(e).__name__}: {e}")
    except (aiohttp.ClientError, OSError) as e:
        error = ("disconnect", f"{type(e).__name__}: {e}")
    except asyncio.CancelledError:
        record.done_s = clock()
        _stamp_timing(record, timing)
        chunks = _finish(record, stream, cfg, ("cancelled", "request cancelled"))
        if on_cancel is not None:
            on_cancel(record, chunks)
        raise
    if record.done_s is None:
        record.done_s = clock()
    _stamp_timing(record, timing)
    return record, _finish(record, stream, cfg, error)


def _stamp_timing(record: RequestRecord, timing: RequestTiming) -> None:
    """sent_s: when the request was written (None when it never was, e.g. connection
    refused); pool_wait_s: time queued for a pooled connection."""
    record.sent_s = timing.sent_s
    record.pool_wait_s = timing.pool_wait_s


async def probe_continuous_usage(session: aiohttp.ClientSession, cfg: EndpointConfig) -> bool:
    """One short request asking for continuous_usage_stats: True when the server accepts it
    and every chunk that carries choices carries usage too. A server that puts the usage on
    its last content chunk only answers False (a 1-token probe could not tell them apart).
    Whatever the probe says, each request's counts are checked again when it ends."""
    plan = RequestPlan(
        request_id="probe",
        index=0,
        dataset="probe",
        problem_id="probe",
        sample_index=0,
        messages=[{"role": "user", "content": "Say hi."}],
        max_tokens=PROBE_TOKENS,
    )
    probe_cfg = replace(cfg, continuous_usage=True, timeout_s=min(cfg.timeout_s, 60.0))
    payload = orjson.dumps(build_body(probe_cfg, plan))
    try:
        async with asyncio.timeout(probe_cfg.timeout_s):
            async with session.post(probe_cfg.url, data=payload, headers=_headers(cfg)) as resp:
                if resp.status != 200:
                    return False
                parser = SSEParser()
                with_usage = without_usage = 0
                async for data in resp.content.iter_any():
                    for ev in parser.feed(data):
                        if ev.is_done:
                            return with_usage > 0 and without_usage == 0
                        try:
                            obj = ev.json()
                        except ValueError:
                            return False
                        if isinstance(obj, dict) and obj.get("choices"):
                            if obj.get("usage"):
                                with_usage += 1
                            else:
                                without_usage += 1
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False
    return False


# --- helpers -------------------------------------------------------------------------


def _new_record(plan: RequestPlan, run_id: str) -> RequestRecord:
    return RequestRecord(
        request_id=plan.request_id,
        run_id=run_id,
        dataset=plan.dataset,
        problem_id=plan.problem_id,
        sample_index=plan.sample_index,
        difficulty=plan.difficulty,
        domain=plan.domain,
        scheduled_s=plan.scheduled_s,
        max_tokens=plan.max_tokens,
        temperature=plan.temperature,
        top_p=plan.top_p,
        seed=plan.seed,
        gold=plan.gold,
        grader=plan.grader,
    )


def _finish(
    record: RequestRecord,
    stream: _Stream,
    cfg: EndpointConfig,
    error: tuple[str, str] | None,
) -> list[ChunkEvent]:
    """Classify the pieces and fill the record's timing, token and text fields."""
    split = classify(stream.pieces, record.request_id, cfg.prompt_opens_think)
    tokens = split_tokens(
        split, stream.completion_tokens, stream.usage_reasoning_tokens, cfg.tokenizer
    )
    record.usage_completion_tokens = stream.completion_tokens
    record.usage_reasoning_tokens = stream.usage_reasoning_tokens
    record.chunk_tokens_sum = split.chunk_tokens_sum
    record.think_open = split.think_open
    record.first_token_s = split.first_token_s
    record.first_visible_s = split.first_visible_s
    record.reasoning_end_s = split.reasoning_end_s
    record.prompt_tokens = stream.prompt_tokens
    record.completion_tokens = tokens.completion_tokens
    record.reasoning_tokens = tokens.reasoning_tokens
    record.answer_tokens = tokens.answer_tokens
    record.token_count_source = tokens.source
    if cfg.store_text:
        record.reasoning_text = split.reasoning_text
        record.answer_text = split.answer_text
    if error is None:
        record.status = "ok"
        record.finish_reason = stream.finish_reason
        record.thinking_truncated = thinking_truncated(split, stream.finish_reason)
    else:
        error_type, message = error
        record.status = "error"
        record.error_type = error_type
        record.error = _one_line(message, cfg.api_key)
        record.finish_reason = "cancelled" if error_type == "cancelled" else "error"
    return split.events


async def _check_response(resp: aiohttp.ClientResponse) -> None:
    """Raise _StreamError for an HTTP error or a response that is not a stream."""
    status = resp.status
    if status != 200:
        if status == 429:
            kind = "http_429"
        elif status >= 500:
            kind = "http_5xx"
        else:
            kind = "http_4xx"
        retry_after = None
        if status in (429, 503):
            retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
        body = await resp.content.read(2048)
        raise _StreamError(kind, f"HTTP {status}: {_body_message(body)}", retry_after)
    if resp.content_type == "application/json":
        body = await resp.content.read(2048)
        try:
            obj = orjson.loads(body)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict) and obj.get("error"):
            raise _StreamError("server_error", _error_text(obj["error"]))
        raise _StreamError("malformed", "server answered JSON instead of an event stream")


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds from now: delta-seconds or an HTTP date (a date in
    the past is 0). None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


async def _drain(resp: aiohttp.ClientResponse) -> None:
    """Read the body's end after [DONE] so the connection returns to the pool; a server
    that holds the stream open costs at most _DRAIN_S and a closed connection."""
    try:
        async with asyncio.timeout(_DRAIN_S):
            while await resp.content.readany():
                pass
    except (TimeoutError, aiohttp.ClientError, OSError):
        pass


def _body_message(body: bytes) -> str:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace") or "(empty body)"
    if isinstance(obj, dict):
        for key in ("error", "message", "detail"):
            if obj.get(key):
                return _error_text(obj[key])
    return body.decode("utf-8", "replace")


def _error_text(err: Any) -> str:
    if isinstance(err, dict):
        return str(err.get("message") or err.get("type") or err)
    return str(err)


def _snippet(data: bytes) -> str:
    return data[:80].decode("utf-8", "replace")


def _one_line(message: str, secret: str | None) -> str:
    if secret:
        message = message.replace(secret, "***")
    message = " ".join(message.split())
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return message
