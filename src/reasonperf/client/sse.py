"""Incremental Server-Sent Events parsing (the client's hot path).

Bytes are fed exactly as the socket delivers them, so a chunk may end anywhere: inside a
line, inside a CRLF pair or inside a multi-byte UTF-8 character. The parser therefore
works on bytes and only splits at line ends (ASCII), which can never fall inside a UTF-8
sequence; event data stays bytes so ``orjson.loads`` can parse it without a decode step.

Follows the WHATWG event-stream rules: lines end in LF, CRLF or CR; ``:`` starts a
comment (keep-alives); ``data`` fields of one event are joined with LF; an empty line
dispatches the event; an event with no data is not dispatched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

_BOM = b"\xef\xbb\xbf"
_DONE = b"[DONE]"


@dataclass(slots=True)
class SSEEvent:
    data: bytes
    event: str | None = None
    id: str | None = None

    @property
    def is_done(self) -> bool:
        """The OpenAI end-of-stream sentinel ``data: [DONE]``."""
        return self.data.strip() == _DONE

    def json(self) -> Any:
        """Parse the data as JSON; raises ``orjson.JSONDecodeError`` (a ValueError)."""
        return orjson.loads(self.data)


class SSEParser:
    """Feed raw bytes with :meth:`feed`; get back the events completed by them."""

    __slots__ = ("_parts", "_skip_lf", "_data", "_event", "_id", "_started")

    def __init__(self) -> None:
        self._parts: list[bytes] = []  # pieces of the current unterminated line
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF completes CRLF
        self._data: list[bytes] = []
        self._event: str | None = None
        self._id: str | None = None
        self._started = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not chunk:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if b"\n" not in chunk:
            if chunk:
                self._parts.append(chunk)
            return []
        if self._parts:
            self._parts.append(chunk)
            chunk = b"".join(self._parts)
            self._parts.clear()
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if tail:
            self._parts.append(tail)
        if not self._started:
            self._started = True
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][len(_BOM) :]
        out: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    out.append(SSEEvent(b"\n".join(self._data), self._event, self._id))
                    self._data = []
                self._event = None
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value[:1] == b" " else value)
            elif line[0] == 0x3A:  # ":" comment / keep-alive
                continue
            else:
                self._field(line)
        return out

    def close(self) -> list[SSEEvent]:
        """End of stream: dispatch an event whose lines were complete but which lacked the
        final empty line (lenient: some servers omit it). A partial last line is dropped,
        so a stream cut mid-line never yields a truncated JSON document."""
        self._parts.clear()
        if not self._data:
            return []
        event = SSEEvent(b"\n".join(self._data), self._event, self._id)
        self._data = []
        self._event = None
        return [event]

    def _field(self, line: bytes) -> None:
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"data":  # "data" with no colon: an empty data line
            self._data.append(value)
        elif name == b"id" and b"\0" not in value:
            self._id = value.decode("utf-8", "replace")
        # "retry" and unknown fields are ignored, as the spec says.
