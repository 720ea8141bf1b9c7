"""The summary's truth section: the client's numbers against the engine's own.

When the engine's /metrics were sampled, every run checks itself:
- tokens: the completion tokens the client counted against the increase of the engine's
  generation counter (``vllm:generation_tokens_total``) over the run;
- requests: ok requests against the increase of the engine's E2E histogram count;
- TTFT and E2E: the client's means against the engine's own histogram means over the run
  (increase of ``_sum`` / increase of ``_count`` of ``vllm:time_to_first_token_seconds``
  and ``vllm:e2e_request_latency_seconds``).

The engine times a request from its arrival in the engine's frontend (after the HTTP
request was read and the prompt rendered) to the moment the token left the model, so the
client's times are expected to be a little longer: the ratio client / engine is >= 1 with
a small absolute offset per request (HTTP transit both ways, request parsing and chat
templating, detokenising and SSE framing). A ratio outside [0.9, 1.1] is flagged: either
the offset is large against the latency itself (fast, tiny requests) or one side measures
something else (other traffic on the engine, a proxy, a clock problem).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reasonperf.metrics import request as rq
from reasonperf.metrics.server import counter_increase, engine_series
from reasonperf.telemetry import names

BAND = (0.9, 1.1)

OFFSET_WORDS = (
    "client / engine mean; the engine's clock starts when the request reaches its frontend "
    "and stops when the token leaves the model, the client's when the request is sent and "
    "when the chunk is read, so the client is expected to be slower by a small offset per "
    "request (HTTP transit both ways; the API server's parsing, chat templating and "
    "tokenizing before the engine stamps the arrival, one request at a time, so a burst "
    "waits in line there; detokenising and SSE framing on the way back)"
)


def _mean(values: np.ndarray) -> float | None:
    v = values[np.isfinite(values)]
    return float(v.mean()) if len(v) else None


def _latency(client: np.ndarray, eng_sum: float | None, eng_count: float | None,
             what: str) -> dict[str, Any]:
    c_mean = _mean(client)
    e_mean = eng_sum / eng_count if eng_sum is not None and eng_count else None
    ratio = c_mean / e_mean if c_mean is not None and e_mean else None
    return {
        "client_mean_s": c_mean,
        "client_n": int(np.isfinite(client).sum()),
        "engine_mean_s": e_mean,
        "engine_n": None if eng_count is None else int(round(eng_count)),
        "ratio": ratio,
        "offset_s": c_mean - e_mean if c_mean is not None and e_mean is not None else None,
        "in_band": None if ratio is None else bool(BAND[0] <= ratio <= BAND[1]),
        "explanation": f"{what}: {OFFSET_WORDS}",
    }


def truth_summary(requests: pa.Table, timeline: pa.Table | None, probe_requests: int
                  ) -> dict[str, Any] | None:
    """The truth section, or None when no engine metric was sampled.

    ``probe_requests``: continuous-usage probes sent to the engine that are not in the
    request table (one per run segment with --continuous-usage auto). The sampler waits
    for an idle engine before its first sample, so a probe is finished before the baseline
    and outside the deltas; if the engine still counts one request more per probe, the
    note says it is most likely the probe.
    """
    if timeline is None or timeline.num_rows == 0:
        return None
    if not pc.any(pc.equal(timeline["source"], names.SOURCE_ENGINE)).as_py():
        return None

    def delta(metric: str) -> float | None:
        return counter_increase(engine_series(timeline, metric))

    ok_mask = pc.fill_null(pc.equal(requests.column("status"), "ok"), False)
    ok = requests if pc.all(ok_mask).as_py() else requests.filter(ok_mask)  # copy only if needed
    comp = rq.col(ok, "completion_tokens")
    known = np.isfinite(comp)
    client_tokens = int(comp[known].sum()) if known.any() else None
    engine_tokens = delta(names.GENERATION_TOKENS_TOTAL)
    diff = (engine_tokens - client_tokens
            if engine_tokens is not None and client_tokens is not None else None)
    tokens = {
        "client": client_tokens,
        "client_coverage": float(known.mean()) if ok.num_rows else None,
        "engine": None if engine_tokens is None else int(round(engine_tokens)),
        "diff": None if diff is None else int(round(diff)),
        "ratio": client_tokens / engine_tokens if client_tokens is not None and engine_tokens else None,
        "agrees": None if diff is None else bool(diff == 0),
        "note": "completion tokens of the ok requests (client) against the increase of the "
                "engine's generation counter over the run; errored requests and other "
                "traffic on the engine count on the engine's side only",
    }
    engine_requests = delta(names.E2E_SECONDS_COUNT)
    n_eng = None if engine_requests is None else int(round(engine_requests))
    req_note = (f"{probe_requests} continuous-usage probe request(s) of 1 token went to the "
                "engine before the baseline sample and are not in the deltas")
    if n_eng is not None and probe_requests and n_eng - ok.num_rows == probe_requests:
        req_note = (f"the engine finished {probe_requests} request(s) more than the client "
                    "recorded: most likely the continuous-usage probe, finished after the "
                    "baseline sample")
    reqs = {"client": ok.num_rows, "engine": n_eng, "probe_requests": probe_requests,
            "note": req_note}
    out: dict[str, Any] = {
        "band": list(BAND),
        "tokens": tokens,
        "requests": reqs,
        "ttft": _latency(rq.ttft(ok), delta(names.TTFT_SECONDS_SUM),
                         delta(names.TTFT_SECONDS_COUNT), "TTFT"),
        "e2e": _latency(rq.e2e(ok), delta(names.E2E_SECONDS_SUM),
                        delta(names.E2E_SECONDS_COUNT), "E2E"),
    }
    out["flags"] = _flags(out)
    return out


def _flags(t: dict[str, Any]) -> list[str]:
    flags = []
    tok = t["tokens"]
    if tok["agrees"] is False:
        flags.append(f"client counted {tok['client']} completion tokens, the engine generated "
                     f"{tok['engine']} over the run (difference {tok['diff']:+d})")
    req = t["requests"]
    if req["engine"] is not None and req["engine"] != req["client"]:
        flags.append(f"engine finished {req['engine']} requests over the run, the client "
                     f"recorded {req['client']} ok; {req['note']}")
    for key, label in (("ttft", "TTFT"), ("e2e", "E2E")):
        d = t[key]
        if d["in_band"] is False:
            flags.append(f"client / engine mean {label} ratio {d['ratio']:.2f} is outside "
                         f"[{BAND[0]}, {BAND[1]}] (client {d['client_mean_s']:.4f} s, "
                         f"engine {d['engine_mean_s']:.4f} s, offset {d['offset_s']:+.4f} s)")
    return flags
