"""Shard run directories -> one run directory (``reasonperf merge``, and ``--workers``).

Each shard stores times on its own run clock (seconds since its own start). Merged,
every absolute time column is moved onto the coordinator's timeline, in seconds since
T0: ``t + anchor_wall - offset - T0``, where ``anchor_wall`` is the shard's wall clock at
its run clock's zero and ``offset`` its measured offset against the coordinator (0 for
shards started by hand, whose clocks are trusted). A constant shift per shard: every
duration (TTFT, ITL, E2E, dispatch lag) is unchanged, still from one monotonic clock.

Checks: one run_id, every shard of ``count`` present once, no duplicate request id,
records = planned. A failed check is a warning in run.json and summary.json and makes
the merge fail (exit 1); nothing is dropped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from reasonperf.errors import UsageError
from reasonperf.scaleout.clock import FLAG_OFFSET_S
from reasonperf.store import RUN_JSON, RunStore, iter_jsonl
from reasonperf.summary_io import write_summary

TIME_COLUMNS = ("scheduled_s", "sent_s", "first_token_s", "first_visible_s",
                "reasoning_end_s", "done_s")


def _offset_s(shard: dict[str, Any]) -> float:
    """The shard's offset against the coordinator: the mean of the start and end
    measurements when both exist (drift shows as their difference), else 0."""
    known = [m["offset_s"] for m in (shard.get("offset_start"), shard.get("offset_end")) if m]
    return sum(known) / len(known) if known else 0.0


def _read_shards(dirs: Iterable[Path]) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for d in dirs:
        info = RunStore.open(d).read_json(RUN_JSON)
        if not info or "shard" not in info:
            raise UsageError(f"merge: {d} is not a shard run (run.json has no 'shard'); "
                             "merge takes the directories of `reasonperf run --shard I/N`")
        out.append((d, info))
    run_ids = {info["run_id"] for _, info in out}
    if len(run_ids) != 1:
        raise UsageError(f"merge: the directories belong to different runs ({sorted(run_ids)}); "
                         "merge the shards of one run")
    return sorted(out, key=lambda x: x[1]["shard"]["index"])


def merge_shards(dirs: Iterable[Path | str], store: RunStore,
                 shard_offsets: dict[int, dict[str, Any]] | None = None
                 ) -> tuple[dict[str, Any], list[str]]:
    """Merge shard directories into ``store`` (a new, locked run directory); write its
    run.json and summary; return the summary and the failed checks (empty when the
    merge is whole). ``shard_offsets``: index -> the coordinator's start/end offset
    measurements (``--workers``), stored with the shard."""
    shards = _read_shards(Path(d) for d in dirs)
    base = shards[0][1]
    count = base["shard"]["count"]
    t0 = base["shard"].get("t0_unix")
    warnings: list[str] = []  # all, for run.json / summary.json
    problems: list[str] = []  # the failed checks among them
    indices = Counter(info["shard"]["index"] for _, info in shards)
    missing_shards = sorted(set(range(count)) - set(indices))
    if missing_shards or any(n > 1 for n in indices.values()):
        problems.append(f"merge: shards {missing_shards} of {count} missing" if missing_shards
                        else f"merge: a shard given twice ({dict(indices)})")
    ids: Counter[str] = Counter()
    described = []
    client = []
    segment_end = 0.0
    for d, info in shards:
        sh = dict(info["shard"])
        sh.update((shard_offsets or {}).get(sh["index"], {}))
        shift = info["clock"]["wall_time_unix"] - _offset_s(sh) - (t0 or info["clock"]["wall_time_unix"])
        for row in iter_jsonl(d / "requests.jsonl"):
            ids[row["request_id"]] += 1
            for col in TIME_COLUMNS:
                if row.get(col) is not None:
                    row[col] += shift
            if row.get("done_s") is not None:
                segment_end = max(segment_end, row["done_s"])
            _append(store, "requests", row)
        for row in iter_jsonl(d / "chunks.jsonl"):
            row["c"] = [[c[0] + shift, *c[1:]] for c in row["c"]]
            _append(store, "chunks", row)
        if sh["index"] == 0:  # every shard samples the same /metrics: keep one timeline
            for row in iter_jsonl(d / "timeline.jsonl"):
                row[0] += shift
                _append(store, "timeline", row)
        sh.update(dir=str(d), shift_s=shift, offset_s=_offset_s(sh),
                  requests=info.get("num_requests"), client=info.get("client"))
        described.append(sh)
        if info.get("client"):
            client.append({"shard": sh["index"], **info["client"]})
        warnings.extend(f"shard {sh['index']}: {w}" for w in info.get("warnings") or [])
        warnings.extend(_clock_flags(sh))
    planned = base.get("planned_total")
    dupes = sorted(i for i, n in ids.items() if n > 1)
    if dupes:
        problems.append(f"merge: {len(dupes)} request ids recorded by more than one shard "
                        f"(first: {dupes[:3]})")
    if planned is not None and len(ids) != planned:
        problems.append(f"merge: {len(ids)} distinct request ids recorded, {planned} planned")
    if not base["shard"].get("coordinated"):
        warnings.append("merge: shards started by hand: their clock offsets are unknown, "
                        "records are placed by each host's wall clock (keep them NTP-synced)")
    info = {k: v for k, v in base.items() if k not in ("shard", "client", "segments")}
    info.update(
        run_id=base["run_id"], num_requests=planned,
        clock={"wall_time_unix": t0, "perf_counter_ns": None,
               "note": "merged: times are seconds since T0 on the coordinator's clock"},
        segments=[{"started_s": 0.0, "ended_s": segment_end, "requests": len(ids),
                   "resumed": False,
                   "probe_requests": sum(int(s.get("probe_requests") or 0)
                                         for _, i in shards for s in i.get("segments") or [])}],
        shards=described, warnings=[*problems, *warnings],
        client={"per_shard": client, "loop_lag_ms": _worst(client, "loop_lag_ms"),
                "cpu_share": _worst(client, "cpu_share")},
    )
    store.write_json(RUN_JSON, info)
    store.fold()
    return write_summary(store), problems


def _worst(client: list[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The section of the shard with the highest p99 lag / overall CPU share."""
    field = "p99" if key == "loop_lag_ms" else "overall"
    known = [c[key] for c in client if (c.get(key) or {}).get(field) is not None]
    return max(known, key=lambda s: s[field], default=None)


def _clock_flags(shard: dict[str, Any]) -> list[str]:
    out = []
    for when in ("offset_start", "offset_end"):
        m = shard.get(when)
        if m and abs(m["offset_s"]) > FLAG_OFFSET_S:
            out.append(f"clock: shard {shard['index']}'s clock is {m['offset_s'] * 1e3:+.1f} ms "
                       f"off the coordinator's (+/- {m['bound_s'] * 1e3:.2f} ms, at "
                       f"{when.removeprefix('offset_')}); its records were shifted onto the "
                       "coordinator's timeline by this offset")
    return out


def _append(store: RunStore, log: str, row: Any) -> None:
    fh = store._fh(log)  # noqa: SLF001 - the store's own log writer
    fh.write(orjson.dumps(row) + b"\n")
