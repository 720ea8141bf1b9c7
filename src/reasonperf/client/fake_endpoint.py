"""A minimal OpenAI-compatible streaming endpoint for ``reasonperf selfcheck``.

It answers every chat request at once with ``chunks`` content chunks and a final usage
chunk, so the only limit on the rates a selfcheck finds is the client. It runs in its
own process (``serve_in_process``) so it does not share the client's event loop or GIL.
(The test suite's programmable fake server, tests/fake_server.py, does far more and is
not shipped.)
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import orjson
from aiohttp import web

MODEL = "selfcheck-model"


def _app(chunks: int) -> web.Application:
    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(chunks):
            event = {"id": "c", "object": "chat.completion.chunk", "model": MODEL,
                     "choices": [{"index": 0, "delta": {"content": "x "},
                                  "finish_reason": "stop" if i == chunks - 1 else None}]}
            await resp.write(b"data: " + orjson.dumps(event) + b"\n\n")
        usage = {"id": "c", "object": "chat.completion.chunk", "model": MODEL, "choices": [],
                 "usage": {"prompt_tokens": 4, "completion_tokens": chunks,
                           "total_tokens": 4 + chunks}}
        await resp.write(b"data: " + orjson.dumps(usage) + b"\n\ndata: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def _serve(chunks: int, conn: Connection) -> None:
    runner = web.AppRunner(_app(chunks), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    conn.send(runner.addresses[0][1])
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, conn.recv)  # any message (or EOF) stops the server
    await runner.cleanup()


def _main(chunks: int, conn: Connection) -> None:
    try:
        asyncio.run(_serve(chunks, conn))
    except EOFError:
        pass


class FakeEndpoint:
    """``with FakeEndpoint(chunks=32) as ep: ep.base_url`` -> a server in a child process."""

    def __init__(self, chunks: int = 32) -> None:
        self.chunks = chunks
        self.port = 0
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeEndpoint:
        ctx = mp.get_context("spawn")
        ours, theirs = ctx.Pipe()
        self._proc = ctx.Process(target=_main, args=(self.chunks, theirs), daemon=True)
        self._proc.start()
        if not ours.poll(30):
            self.__exit__()
            raise RuntimeError("the selfcheck fake endpoint did not start within 30 s")
        self.port = ours.recv()
        self._conn = ours
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            try:
                self._conn.send("stop")
            except OSError:
                pass
        if self._proc is not None:
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
