"""The load client: SSE parsing, reasoning/answer split, one streaming request, the runner."""

from reasonperf.client.openai import (
    EndpointConfig,
    build_body,
    make_session,
    probe_continuous_usage,
    send_request,
)
from reasonperf.client.split import Piece, Split, TokenSplit, classify, split_tokens
from reasonperf.client.sse import SSEEvent, SSEParser

__all__ = [
    "EndpointConfig",
    "Piece",
    "SSEEvent",
    "SSEParser",
    "Split",
    "TokenSplit",
    "build_body",
    "classify",
    "make_session",
    "probe_continuous_usage",
    "send_request",
    "split_tokens",
]
