"""Is the endpoint still there? Decided from the records as they end.

A run against a dead server (process gone, port closed), a server that refuses every
request (401/403 without the right key, 404 for the model) or one that answers JSON where
a stream was asked for would otherwise keep sending on schedule and exit 0 with a table of
errors. Such failures share one sign: the request got no answer at all (no token, no
stream), so ``DEAD_AFTER`` of them in a row stop the run.

What does *not* count: 429 and 5xx (a loaded server says so, and the run measures it),
timeouts (a slow server), and anything after the first token (the stream existed).
"""

from __future__ import annotations

from reasonperf.records import RequestRecord

DEAD_AFTER = 10  # consecutive unanswered requests that stop a run
_REFUSING_STATUS = frozenset({401, 403, 404})


def unanswered(record: RequestRecord) -> bool:
    """True when the request failed without any answer that a retry could change."""
    if record.status == "ok" or record.first_token_s is not None:
        return False
    if record.error_type == "connect":
        return True
    if record.error_type == "disconnect" and record.http_status is None:
        return True  # the connection closed before any response line
    if record.http_status in _REFUSING_STATUS:
        return True
    return record.error_type == "malformed"  # e.g. JSON instead of an event stream


class EndpointHealth:
    """Counts unanswered requests in a row; ``observe`` returns the reason once dead."""

    def __init__(self, dead_after: int = DEAD_AFTER) -> None:
        self.dead_after = dead_after
        self.streak = 0
        self.reason: str | None = None

    def observe(self, record: RequestRecord) -> str | None:
        if not unanswered(record):
            self.streak = 0
            return self.reason
        self.streak += 1
        if self.reason is None and self.streak >= self.dead_after:
            self.reason = (
                f"the endpoint looks dead: {self.streak} requests in a row got no answer "
                f"(last: {record.error_type}: {record.error})"
            )
        return self.reason
