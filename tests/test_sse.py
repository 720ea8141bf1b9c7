import orjson
import pytest

from reasonperf.client.sse import SSEEvent, SSEParser

STREAM = (
    ": keep-alive\n"
    "\n"
    'data: {"a": "h\u00e9llo \u4e16\u754c"}\n'
    "\n"
    "event: update\n"
    "id: 7\n"
    "data: line one\n"
    "data:line two\n"
    "data\n"
    "\n"
    ":comment between events\n"
    "retry: 100\n"
    "data: [DONE]\n"
    "\n"
).encode()

EXPECTED = [
    SSEEvent(data='{"a": "h\u00e9llo \u4e16\u754c"}'.encode()),
    SSEEvent(data=b"line one\nline two\n", event="update", id="7"),
    SSEEvent(data=b"[DONE]", id="7"),  # the id persists; the event name does not
]


def _feed_all(chunks: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def test_whole_stream() -> None:
    events = _feed_all([STREAM])
    assert events == EXPECTED
    assert orjson.loads(events[0].data) == {"a": "h\u00e9llo \u4e16\u754c"}
    assert events[0].json()["a"].endswith("\u754c")
    assert [e.is_done for e in events] == [False, False, True]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_split_at_every_byte_position(newline: bytes) -> None:
    stream = STREAM.replace(b"\n", newline)
    for i in range(len(stream) + 1):
        assert _feed_all([stream[:i], stream[i:]]) == EXPECTED, (newline, i)


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_byte_by_byte(newline: bytes) -> None:
    stream = STREAM.replace(b"\n", newline)
    assert _feed_all([stream[i : i + 1] for i in range(len(stream))]) == EXPECTED


def test_mixed_line_endings_and_bom() -> None:
    stream = b"\xef\xbb\xbfdata: a\r\ndata: b\n\r\ndata: c\r\r"
    assert _feed_all([stream]) == [SSEEvent(b"a\nb"), SSEEvent(b"c")]


def test_comments_only_and_empty_events_dispatch_nothing() -> None:
    assert _feed_all([b": ping\n\n: ping\n\n\n\nevent: x\n\n"]) == []


def test_close_dispatches_complete_lines_only() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]\n") == []
    assert parser.close() == [SSEEvent(b"[DONE]")]
    parser = SSEParser()
    assert parser.feed(b'data: {"cut": tr') == []  # the stream died mid-line
    assert parser.close() == []


def test_many_events_in_one_chunk() -> None:
    chunk = b"".join(b"data: %d\n\n" % i for i in range(1000))
    assert [int(e.data) for e in _feed_all([chunk])] == list(range(1000))
