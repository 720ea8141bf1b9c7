"""The streaming client against the fake OpenAI server (tests/fake_server.py)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiohttp import web

from reasonperf.client.openai import (
    EndpointConfig,
    build_body,
    make_session,
    probe_continuous_usage,
    send_request,
)
from reasonperf.errors import UsageError
from reasonperf.records import ChunkEvent, RequestPlan, RequestRecord
from tests.fake_server import FakeServer, Programme

MODEL = "fake-model"
SLOW = {"ttft_s": 0.2, "itl_s": 0.01, "reasoning_tokens": 30, "answer_tokens": 20}


@pytest.fixture(scope="module")
def srv() -> Iterator[FakeServer]:
    with FakeServer(Programme(ttft_s=0.01, itl_s=0.001), model=MODEL) as server:
        yield server


def _plan(i: int = 0, **kw: Any) -> RequestPlan:
    return RequestPlan(
        request_id=f"r{i}", index=i, dataset="toy", problem_id=f"p{i}", sample_index=0,
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "What is one plus one?"}],
        **kw,
    )


def _cfg(server: FakeServer, fake: dict[str, Any] | None = None, **kw: Any) -> EndpointConfig:
    extra = {"fake": fake} if fake else {}
    return EndpointConfig(server.base_url, MODEL, extra_body=extra, **kw)


def _clock() -> Callable[[], float]:
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0


def _send(cfg: EndpointConfig, plan: RequestPlan | None = None
          ) -> tuple[RequestRecord, list[ChunkEvent]]:
    async def go() -> tuple[RequestRecord, list[ChunkEvent]]:
        async with make_session(4) as session:
            return await send_request(session, cfg, plan or _plan(), _clock(), "run1")

    return asyncio.run(go())


def _close(value: float | None, expected: float) -> bool:
    return value is not None and abs(value - expected) <= max(0.005, 0.05 * expected)


def _timing_errors(rec: RequestRecord) -> list[str]:
    assert rec.sent_s is not None
    expected = {"first_token_s": 0.2, "first_visible_s": 0.2 + 30 * 0.01,
                "reasoning_end_s": 0.2 + 29 * 0.01, "done_s": 0.2 + 49 * 0.01}
    return [f"{name}: {getattr(rec, name) - rec.sent_s:.4f} s, expected {want:.4f} s"
            for name, want in expected.items() if not _close(getattr(rec, name) - rec.sent_s,
                                                             want)]


def test_timing_matches_the_programme(srv: FakeServer) -> None:
    """Tolerance 5 ms or 5 %. A saturated machine can delay a wakeup by tens of ms, so up to
    three attempts are made; a systematic bias still fails all three."""
    for _ in range(3):
        rec, chunks = _send(_cfg(srv, SLOW))
        assert rec.status == "ok" and rec.finish_reason == "stop"
        assert len(chunks) == 50
        assert [c.t_s for c in chunks] == sorted(c.t_s for c in chunks)
        errors = _timing_errors(rec)
        if not errors:
            break
    assert errors == []


@pytest.mark.parametrize(
    "variant", ["reasoning", "reasoning_content", "reasoning_details", "think_tags",
                "think_open_only"]
)
@pytest.mark.parametrize("continuous", [False, True])
def test_variants_give_exact_counts_and_texts(srv: FakeServer, variant: str,
                                              continuous: bool) -> None:
    fake = {"variant": variant, "tokens_per_chunk": 3, "usage_details": not continuous}
    rec, chunks = _send(_cfg(srv, fake, continuous_usage=continuous))
    assert rec.status == "ok", rec.error
    assert (rec.prompt_tokens, rec.completion_tokens) == (7, 50)
    assert (rec.reasoning_tokens, rec.answer_tokens) == (30, 20)
    assert rec.token_count_source == ("continuous_usage" if continuous else "usage_details")
    assert rec.reasoning_text is not None and rec.answer_text is not None
    assert rec.reasoning_text.startswith(" think check") and len(rec.reasoning_text) == 30 * 6
    assert rec.answer_text.startswith(" final value") and len(rec.answer_text) == 20 * 6
    assert "<" not in rec.reasoning_text + rec.answer_text
    # 17 chunks of 3 tokens; 30 is a multiple of 3, so the phases meet at a chunk border
    assert sum(c.n_chars for c in chunks) == 50 * 6
    assert [c.kind for c in chunks] == ["reasoning"] * 10 + ["answer"] * 7
    assert rec.first_visible_s == chunks[10].t_s and rec.reasoning_end_s == chunks[9].t_s
    if continuous:
        assert sum(c.n_tokens or 0 for c in chunks if c.kind == "reasoning") == 30


def test_straddling_chunk_counts_with_continuous_usage(srv: FakeServer) -> None:
    fake = {"variant": "think_tags", "tokens_per_chunk": 4}
    rec, chunks = _send(_cfg(srv, fake, continuous_usage=True))
    # chunk 7 holds tokens 28..31: two reasoning, then </think> and two answer tokens
    straddle = chunks[7:9]
    assert [(c.kind, c.n_tokens) for c in straddle] == [("reasoning", 2), ("answer", 2)]
    assert straddle[0].t_s == straddle[1].t_s == rec.first_visible_s
    assert (rec.reasoning_tokens, rec.answer_tokens) == (30, 20)
    assert rec.reasoning_end_s == rec.first_visible_s


def test_no_reasoning_and_char_share_fallback(srv: FakeServer) -> None:
    rec, _ = _send(_cfg(srv, {"variant": "none"}))
    assert (rec.reasoning_tokens, rec.answer_tokens, rec.token_count_source) == (0, 20, "usage")
    assert rec.reasoning_end_s is None and rec.first_visible_s == rec.first_token_s
    rec, _ = _send(_cfg(srv, {"variant": "reasoning"}))  # usage without details
    assert (rec.reasoning_tokens, rec.answer_tokens, rec.token_count_source) == (30, 20, "chars")


def test_without_usage_counts_stay_empty_unless_a_tokenizer_is_given(srv: FakeServer) -> None:
    rec, _ = _send(_cfg(srv, {"usage": False}))
    assert rec.status == "ok"
    assert (rec.completion_tokens, rec.reasoning_tokens, rec.token_count_source) == (
        None, None, None
    )
    rec, _ = _send(_cfg(srv, {"usage": False}, tokenizer=lambda s: len(s.split())))
    assert (rec.completion_tokens, rec.reasoning_tokens, rec.answer_tokens) == (50, 30, 20)
    assert rec.token_count_source == "tokenizer"


def test_completions_api_and_length_finish(srv: FakeServer) -> None:
    rec, _ = _send(_cfg(srv, api="completions"), _plan(max_tokens=35, seed=3))
    assert rec.status == "ok" and rec.finish_reason == "length"
    assert (rec.completion_tokens, rec.reasoning_tokens, rec.answer_tokens) == (35, 30, 5)
    assert (rec.max_tokens, rec.seed) == (35, 3)


def test_store_text_off(srv: FakeServer) -> None:
    rec, chunks = _send(_cfg(srv, store_text=False))
    assert rec.reasoning_text is None and rec.answer_text is None
    assert rec.reasoning_tokens == 30 and len(chunks) == 50


@pytest.mark.parametrize(
    ("fault", "error_type", "partial"),
    [("http429", "http_429", False), ("http500", "http_5xx", False),
     ("cut", "disconnect", True), ("malformed", "malformed", True)],
)
def test_faults_give_typed_errors_and_keep_partial_data(
    srv: FakeServer, fault: str, error_type: str, partial: bool
) -> None:
    rec, chunks = _send(_cfg(srv, {"faults": {fault: 1.0}, "fault_after": 10}))
    assert (rec.status, rec.error_type, rec.finish_reason) == ("error", error_type, "error")
    assert rec.error and "\n" not in rec.error and len(rec.error) <= 200
    assert rec.done_s is not None and rec.sent_s is not None and rec.done_s >= rec.sent_s
    if partial:
        assert rec.first_token_s is not None
        assert rec.reasoning_text == "".join(
            " " + w for w in ("think", "check", "maybe", "given", "hence", "where", "first",
                              "units", "think", "check")
        )
        assert len(chunks) == 10
    else:
        assert rec.first_token_s is None and chunks == []
        assert str(429 if fault == "http429" else 500) in rec.error


def test_hang_past_timeout(srv: FakeServer) -> None:
    cfg = _cfg(srv, {"faults": {"hang": 1.0}, "fault_after": 5}, timeout_s=0.5,
               continuous_usage=True)
    rec, chunks = _send(cfg)
    assert (rec.status, rec.error_type) == ("error", "timeout")
    assert rec.done_s - rec.sent_s >= 0.49  # type: ignore[operator]
    assert len(chunks) == 5 and rec.completion_tokens == 5  # partial continuous usage
    deadline = time.monotonic() + 5
    while srv.in_flight and time.monotonic() < deadline:  # the server sees the client leave
        time.sleep(0.02)
    assert srv.in_flight == 0


def test_wrong_model_is_4xx_and_refused_port_is_connect(srv: FakeServer) -> None:
    rec, _ = _send(EndpointConfig(srv.base_url, "other-model"))
    assert (rec.error_type, rec.finish_reason) == ("http_4xx", "error")
    assert "other-model" in (rec.error or "")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rec, _ = _send(EndpointConfig(f"http://127.0.0.1:{port}/v1", MODEL, timeout_s=5))
    assert (rec.status, rec.error_type) == ("error", "connect")


def test_server_error_object_in_stream() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b'data: {"choices": [{"delta": {"content": " hi"}}]}\n\n')
        await resp.write(b'data: {"error": {"message": "engine died\\nbadly"}}\n\n')
        return resp

    async def go() -> RequestRecord:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            cfg = EndpointConfig(f"http://127.0.0.1:{port}/v1", MODEL, api_key="sk-secret")
            async with make_session(1) as session:
                rec, _ = await send_request(session, cfg, _plan(), _clock(), "run1")
                return rec
        finally:
            await runner.cleanup()

    rec = asyncio.run(go())
    assert (rec.error_type, rec.error, rec.answer_text) == ("server_error", "engine died badly",
                                                            " hi")


def test_probe_continuous_usage() -> None:
    with FakeServer(Programme(ttft_s=0, itl_s=0), model=MODEL) as yes, \
            FakeServer(Programme(ttft_s=0, itl_s=0, continuous_usage=False), model=MODEL) as no:

        async def go() -> tuple[bool, bool]:
            async with make_session(2) as session:
                return (await probe_continuous_usage(session, EndpointConfig(yes.base_url, MODEL)),
                        await probe_continuous_usage(session, EndpointConfig(no.base_url, MODEL)))

        assert asyncio.run(go()) == (True, False)
        # a strict server rejects the option outright
        rec, _ = _send(_cfg(no, continuous_usage=True))
        assert rec.error_type == "http_4xx"


def test_cancellation_is_recorded_and_reraised(srv: FakeServer) -> None:
    seen: list[RequestRecord] = []

    async def go() -> None:
        async with make_session(1) as session:
            task = asyncio.create_task(send_request(
                session, _cfg(srv, {"ttft_s": 0.0, "itl_s": 0.05}), _plan(), _clock(), "run1",
                on_cancel=lambda rec, chunks: seen.append(rec),
            ))
            deadline = time.monotonic() + 5
            # the second chunk is 50 ms after the first: by then the first has arrived
            while srv.generation_tokens_total < before + 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    before = srv.generation_tokens_total
    asyncio.run(go())
    assert len(seen) == 1
    rec = seen[0]
    assert (rec.status, rec.error_type, rec.finish_reason) == ("error", "cancelled", "cancelled")
    assert rec.first_token_s is not None and rec.done_s is not None


def test_concurrent_requests_and_live_metrics(srv: FakeServer) -> None:
    async def go() -> tuple[list[RequestRecord], str]:
        async with make_session(8) as session:
            cfg = _cfg(srv, {"ttft_s": 0.05, "itl_s": 0.01})
            tasks = [asyncio.create_task(send_request(session, cfg, _plan(i), _clock(), "run1"))
                     for i in range(6)]
            deadline = time.monotonic() + 5
            while srv.running < 6 and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            async with session.get(srv.url + "/metrics") as resp:
                text = await resp.text()
            results = await asyncio.gather(*tasks)
            return [r for r, _ in results], text

    start_received = srv.requests_received
    records, text = asyncio.run(go())
    assert [r.status for r in records] == ["ok"] * 6
    assert [r.request_id for r in records] == [f"r{i}" for i in range(6)]
    assert srv.requests_received - start_received == 6
    assert srv.max_in_flight >= 6
    assert f'vllm:num_requests_running{{model_name="{MODEL}"}} 6.0' in text
    for name in ("vllm:kv_cache_usage_perc", "vllm:num_requests_waiting",
                 "vllm:num_preemptions_total", "vllm:generation_tokens_total",
                 "vllm:prompt_tokens_total"):
        assert f'{name}{{model_name="{MODEL}"}}' in text


def test_authorization_header_only_with_a_key() -> None:
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(status=401, text="nope sk-secret")

    async def go() -> list[RequestRecord]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        try:
            async with make_session(1) as session:
                out = []
                for key in (None, "sk-secret"):
                    cfg = EndpointConfig(base, MODEL, api_key=key)
                    out.append((await send_request(session, cfg, _plan(), _clock(), "r"))[0])
                return out
        finally:
            await runner.cleanup()

    records = asyncio.run(go())
    assert seen == [None, "Bearer sk-secret"]
    assert all(r.error_type == "http_4xx" for r in records)
    assert "sk-secret" not in (records[1].error or "")
    assert "sk-secret" not in repr(EndpointConfig("http://x/v1", MODEL, api_key="sk-secret"))


def test_build_body() -> None:
    cfg = EndpointConfig("http://h/v1", MODEL, continuous_usage=True, extra_body={"top_k": 5})
    body = build_body(cfg, _plan(max_tokens=10, temperature=0.0))
    assert body["stream"] is True and body["model"] == MODEL
    assert body["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}
    assert (body["max_tokens"], body["temperature"], body["top_k"]) == (10, 0.0, 5)
    assert "top_p" not in body and "seed" not in body and "messages" in body
    comp = build_body(EndpointConfig("http://h/v1", MODEL, api="completions"), _plan())
    assert comp["prompt"] == "Be brief.\n\nWhat is one plus one?" and "messages" not in comp
    assert comp["stream_options"] == {"include_usage": True}


def test_bad_config_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="api"):
        EndpointConfig("http://h/v1", MODEL, api="responses")
    with pytest.raises(UsageError, match="base_url"):
        EndpointConfig("h:8000/v1", MODEL)
    with pytest.raises(UsageError, match="concurrency"):
        make_session(0)


# --- issue 9: cut-off thinking, disagreeing counts, usage on the last chunk only -------


@pytest.mark.parametrize("continuous", [False, True])
def test_pre_opened_think_cut_by_max_tokens_is_reasoning(srv: FakeServer,
                                                         continuous: bool) -> None:
    fake = {"variant": "think_open_only"}
    rec, chunks = _send(_cfg(srv, fake, prompt_opens_think=True, continuous_usage=continuous),
                        _plan(max_tokens=10))
    assert (rec.status, rec.finish_reason) == ("ok", "length")
    assert (rec.completion_tokens, rec.reasoning_tokens, rec.answer_tokens) == (10, 10, 0)
    assert rec.answer_text == "" and rec.reasoning_text and rec.reasoning_text.startswith(" think")
    assert rec.first_token_s is not None and rec.first_visible_s is None
    assert rec.thinking_truncated is True and rec.think_open is True
    assert {c.kind for c in chunks} == {"reasoning"}
    # not told that the prompt pre-opens <think>, a cut before </think> has no evidence
    rec, _ = _send(_cfg(srv, fake), _plan(max_tokens=10))
    assert rec.think_open is False and rec.thinking_truncated is False
    # ... but an uncut answer shows its bare </think>
    rec, _ = _send(_cfg(srv, fake))
    assert rec.think_open is True and rec.thinking_truncated is False
    assert (rec.reasoning_tokens, rec.answer_tokens) == (30, 20)


def test_reasoning_parser_cut_is_thinking_truncated(srv: FakeServer) -> None:
    rec, _ = _send(_cfg(srv, {"variant": "reasoning"}), _plan(max_tokens=10))
    assert rec.finish_reason == "length" and rec.answer_text == ""
    assert rec.first_visible_s is None and rec.thinking_truncated is True
    assert rec.think_open is None  # the server split the reasoning, no tags parsed


def test_usage_on_the_last_content_chunk_gives_no_per_chunk_counts(srv: FakeServer) -> None:
    fake = {"usage_on_last_chunk": True}
    rec, chunks = _send(_cfg(srv, fake, continuous_usage=True))
    assert rec.status == "ok" and len(chunks) == 50
    assert [c.n_tokens for c in chunks] == [None] * 50
    assert rec.chunk_tokens_sum is None and rec.usage_completion_tokens == 50
    assert rec.completion_tokens == 50 and rec.token_count_source != "continuous_usage"


def test_final_usage_that_disagrees_with_the_chunks_is_recorded(srv: FakeServer) -> None:
    fake = {"final_usage_skew": 2, "usage_details": True}
    rec, chunks = _send(_cfg(srv, fake, continuous_usage=True))
    assert (rec.chunk_tokens_sum, rec.usage_completion_tokens) == (50, 52)
    assert rec.usage_reasoning_tokens == 30
    assert rec.completion_tokens == 52 and rec.token_count_source == "usage_details"
    assert sum(c.n_tokens or 0 for c in chunks) == 50  # no phantom chunk for the gap


def test_consistent_continuous_usage_fills_the_check_columns(srv: FakeServer) -> None:
    rec, _ = _send(_cfg(srv, {"usage_details": True}, continuous_usage=True))
    assert (rec.chunk_tokens_sum, rec.usage_completion_tokens, rec.usage_reasoning_tokens) == (
        50, 50, 30)
    assert rec.token_count_source == "continuous_usage"


def test_probe_rejects_usage_on_the_last_chunk_only() -> None:
    with FakeServer(Programme(ttft_s=0, itl_s=0, usage_on_last_chunk=True), model=MODEL) as s:

        async def go() -> bool:
            async with make_session(1) as session:
                return await probe_continuous_usage(
                    session, EndpointConfig(s.base_url, MODEL, api="completions"))

        assert asyncio.run(go()) is False
