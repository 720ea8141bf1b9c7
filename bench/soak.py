"""Soak: a long open-loop run against a faulty fake server, interrupted and resumed.

The fake server (its own process) injects every fault kind it knows (429, 500, cut
streams, malformed events, hangs) at ``--fault-rate`` each. The client (``reasonperf run``,
its own process) sends ``--rate`` req/s; every ``--resume-every`` minutes it gets a SIGINT
and is resumed with ``--resume --retry-errors`` until every request was sent. At the end:

- every request id is in requests.parquet exactly once, and every (id, attempt) in the
  log exactly once, attempts numbered 1..k;
- no finished record is lost: each ok record seen after an interrupt is still there, with
  the same times, and is the request's final record;
- the client's RSS grows under 10 % within each segment (warm-up excluded), and its open
  fds and sockets do not grow (median of the load's second half against its first: the
  counts include requests in flight, which hang faults hold open until the timeout).

    .venv/bin/python bench/soak.py                          # 30 minutes, resume every 5
    .venv/bin/python bench/soak.py --minutes 3 --resume-every 1

Prints requests sent, faults injected, records lost, duplicates, RSS and fd counts at
start and end, and exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from reasonperf.store import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
WARMUP_S = 10.0  # imports, workload generation, first connections
SAMPLE_S = 1.0
# fault kind of the fake server -> the error_type the client records for it
FAULT_ERRORS = {"http429": "http_429", "http500": "http_5xx", "cut": "disconnect",
                "malformed": "malformed", "hang": "timeout"}


@dataclass
class Sample:
    t: float  # seconds since the segment started
    rss_kb: int
    fds: int
    sockets: int
    server_requests: int


@dataclass
class Segment:
    index: int
    returncode: int | None = None
    samples: list[Sample] = field(default_factory=list)

    def load_samples(self) -> list[Sample]:
        """Samples after warm-up while the server still received requests (the fold and
        summary at the end of a run read whole tables: not a steady state)."""
        out = [s for s in self.samples if s.t >= WARMUP_S]
        last_growth = max((i for i in range(1, len(out))
                           if out[i].server_requests > out[i - 1].server_requests), default=0)
        return out[: last_growth + 1]


def proc_stats(pid: int) -> tuple[int, int, int] | None:
    """(VmRSS kB, open fds, sockets) of a live process, None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines()
                   if line.startswith("VmRSS:"))
        fds = sockets = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            fds += 1
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    sockets += 1
            except OSError:
                continue
        return rss, fds, sockets
    except (OSError, StopIteration):
        return None


def server_stats(url: str) -> dict[str, Any]:
    base = url.removesuffix("/v1")
    with urllib.request.urlopen(f"{base}/fake/stats", timeout=5) as resp:
        return dict(json.loads(resp.read()))


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_server", "--ttft", "0.01", "--itl", "0.002",
         "--reasoning-tokens", "10", "--answer-tokens", "10", "--fault-rate",
         str(args.fault_rate), "--seed", str(args.seed)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        proc.kill()
        raise SystemExit(f"the fake server did not start (got {url!r})")
    return proc, url


def planned_requests(args: argparse.Namespace) -> int:
    """Request ids such that the load lasts about --minutes at --rate: with errors retried
    at each resume, a share p of faults makes about n / (1 - p) sends."""
    n = args.minutes * 60 * args.rate
    if args.retry_errors:
        n *= max(0.05, 1 - args.fault_rate * len(FAULT_ERRORS))
    return int(n)


def client_command(args: argparse.Namespace, url: str, out: Path, run_dir: Path | None
                   ) -> list[str]:
    base = [sys.executable, "-m", "reasonperf", "run"]
    if run_dir is not None:
        return [*base, "--resume", str(run_dir),
                *(["--retry-errors"] if args.retry_errors else []), *args.client_arg]
    n = planned_requests(args)
    return [*base, "--endpoint", url, "--model", "fake-model", "--workload", "procedural",
            "--limit", str(n), "--arrival", "poisson", "--rate", str(args.rate),
            "--timeout", str(args.timeout), "--max-tokens", "64", "--continuous-usage", "on",
            "--no-text", "--no-grade", "--sample-interval", "1", "--out", str(out),
            "--name", "soak", "--seed", str(args.seed), *args.client_arg]


def run_segment(seg: Segment, cmd: list[str], url: str, limit_s: float | None,
                log: Path) -> None:
    """Run the client; SIGINT it after limit_s (None: let it finish); sample it meanwhile."""
    env = {**os.environ, "COLUMNS": "120"}
    with log.open("ab") as fh:
        # A shell's background job inherits SIGINT ignored; Python then never raises
        # KeyboardInterrupt. The client gets the default disposition back.
        proc = subprocess.Popen(cmd, stdout=fh, stderr=fh, env=env, cwd=ROOT,
                                preexec_fn=_default_sigint)
        t0 = time.monotonic()
        interrupted = False
        while proc.poll() is None:
            now = time.monotonic() - t0
            if limit_s is not None and now >= limit_s and not interrupted:
                proc.send_signal(signal.SIGINT)
                interrupted = True
            stats = proc_stats(proc.pid)
            if stats is not None:
                seg.samples.append(Sample(now, *stats, server_stats(url)["requests_received"]))
            time.sleep(SAMPLE_S)
        seg.returncode = proc.returncode


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ok_records(run_dir: Path) -> dict[tuple[str, int], float | None]:
    return {(r["request_id"], r.get("attempt") or 1): r.get("done_s")
            for r in read_jsonl(run_dir / "requests.jsonl") if r.get("status") == "ok"}


def median_of(samples: list[Sample], attr: str, first: bool, k: int = 5) -> float:
    part = samples[:k] if first else samples[-k:]
    return statistics.median(getattr(s, attr) for s in part) if part else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0, help="planned load (minutes at --rate)")
    ap.add_argument("--resume-every", type=float, default=5.0, help="minutes between SIGINTs")
    ap.add_argument("--rate", type=float, default=50.0, help="requests per second")
    ap.add_argument("--fault-rate", type=float, default=0.1, help="probability of each fault kind")
    ap.add_argument("--timeout", type=float, default=2.0, help="client per-request timeout (s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-retry-errors", dest="retry_errors", action="store_false",
                    help="resume without --retry-errors")
    ap.add_argument("--client-arg", action="append", default=[],
                    help="extra argument for every reasonperf run (repeatable)")
    ap.add_argument("--out", type=Path, default=None, help="runs folder (default: a temp dir)")
    args = ap.parse_args()

    out = args.out or Path(tempfile.mkdtemp(prefix="reasonperf-soak-"))
    log = out / "client.log"
    out.mkdir(parents=True, exist_ok=True)
    server, url = start_server(args)
    segments: list[Segment] = []
    seen_ok: dict[tuple[str, int], float | None] = {}
    run_dir: Path | None = None
    t_start = time.monotonic()
    try:
        server_fds_start = proc_stats(server.pid)
        max_segments = int(args.minutes / args.resume_every) + 20
        while len(segments) < max_segments:
            seg = Segment(len(segments) + 1)
            segments.append(seg)
            cmd = client_command(args, url, out, run_dir)
            run_segment(seg, cmd, url, args.resume_every * 60, log)
            if run_dir is None:
                found = sorted(out.glob("*-soak*/run.json"))
                if not found:
                    raise SystemExit(f"the client wrote no run (see {log})")
                run_dir = found[0].parent
            seen_ok.update(ok_records(run_dir))  # what is finished must stay finished
            print(f"segment {seg.index}: exit {seg.returncode}, {len(seen_ok)} ok records so far",
                  flush=True)
            if seg.returncode != 130:
                break
        stats = server_stats(url)
        server_fds_end = proc_stats(server.pid)
    finally:
        server.terminate()
        server.wait(10)
    assert run_dir is not None
    wall_min = (time.monotonic() - t_start) / 60
    return report(args, run_dir, segments, seen_ok, stats, server_fds_start, server_fds_end,
                  wall_min, log)


def report(args: argparse.Namespace, run_dir: Path, segments: list[Segment],
           seen_ok: dict[tuple[str, int], float | None], stats: dict[str, Any],
           server_start: tuple[int, int, int] | None, server_end: tuple[int, int, int] | None,
           wall_min: float, log: Path) -> int:
    n = planned_requests(args)
    final = pq.read_table(run_dir / "requests.parquet").to_pylist()
    history = read_jsonl(run_dir / "requests.jsonl")
    ids = [r["request_id"] for r in final]
    expected = {f"r{i:06d}" for i in range(n)}
    dup_final = len(ids) - len(set(ids))
    pairs = Counter((r["request_id"], r.get("attempt") or 1) for r in history)
    dup_log = sum(c - 1 for c in pairs.values() if c > 1)
    per_id: dict[str, list[int]] = {}
    for rid, attempt in pairs:
        per_id.setdefault(rid, []).append(attempt)
    bad_numbering = sum(1 for a in per_id.values() if sorted(a) != list(range(1, len(a) + 1)))
    now_ok = ok_records(run_dir)
    final_by_id = {r["request_id"]: r for r in final}
    lost = sum(1 for key, done in seen_ok.items()
               if now_ok.get(key, "missing") != done
               or final_by_id.get(key[0], {}).get("status") != "ok")
    missing = len(expected - set(ids))
    extra = len(set(ids) - expected)
    errors = Counter(r.get("error_type") for r in history if r.get("status") != "ok")
    faults = stats["faults_injected"]

    print(f"\nsoak: {args.minutes:g} min planned at {args.rate:g} req/s, fault rate "
          f"{args.fault_rate:g} of each kind, SIGINT + resume every {args.resume_every:g} min; "
          f"took {wall_min:.1f} min in {len(segments)} segments; run {run_dir}")
    print(f"requests planned {n}, sent (server received) {stats['requests_received']}, "
          f"records in the log {len(history)}, final rows {len(final)}, "
          f"re-sent attempts {sum(1 for (_r, a) in pairs if a > 1)}")
    print("faults injected: " + ", ".join(f"{k} {faults.get(k, 0)}" for k in FAULT_ERRORS)
          + f" (total {sum(faults.values())})")
    print("errors recorded: " + ", ".join(f"{v} {errors.get(v, 0)}" for v in FAULT_ERRORS.values())
          + f"; other: {sum(c for k, c in errors.items() if k not in FAULT_ERRORS.values())}")
    print(f"records lost {lost} (of {len(seen_ok)} ok records seen at interrupts), "
          f"duplicates {dup_final} in requests.parquet and {dup_log} (id, attempt) in the log, "
          f"badly numbered attempts {bad_numbering}, missing ids {missing}, unknown ids {extra}")
    checks = {
        "every id exactly once": dup_final == 0 and missing == 0 and extra == 0,
        "(id, attempt) unique and numbered 1..k": dup_log == 0 and bad_numbering == 0,
        "no lost finished record": lost == 0,
    }
    print("\nclient process, per segment (load phase after warm-up; RSS: medians of the first "
          "and last 5 samples; fds and sockets: medians of the first and second half):")
    print(f"{'seg':>3} {'exit':>4} {'RSS start MB':>12} {'RSS end MB':>10} {'growth':>7} "
          f"{'fds start':>9} {'fds end':>7} {'sockets start':>13} {'sockets end':>11}")
    rss_ok = fds_ok = True
    for seg in segments:
        load = seg.load_samples()
        if len(load) < 6:
            print(f"{seg.index:>3} {seg.returncode!s:>4}  (too short to judge)")
            continue
        rss0, rss1 = median_of(load, "rss_kb", True), median_of(load, "rss_kb", False)
        # fds and sockets include the requests in flight (hang faults hold theirs until the
        # timeout), so a leak is judged as growth from the first half of the load to the
        # second (medians over each half), not from a few samples that a burst of hangs
        # can fill
        half = len(load) // 2
        fd0, fd1 = median_of(load, "fds", True, half), median_of(load, "fds", False, half)
        so0 = median_of(load, "sockets", True, half)
        so1 = median_of(load, "sockets", False, half)
        growth = rss1 / rss0 - 1
        rss_ok &= growth < 0.10
        fds_ok &= fd1 - fd0 <= max(10, 0.1 * fd0) and so1 - so0 <= max(10, 0.1 * so0)
        print(f"{seg.index:>3} {seg.returncode!s:>4} {rss0 / 1024:>12.1f} {rss1 / 1024:>10.1f} "
              f"{growth:>+7.1%} {fd0:>9.0f} {fd1:>7.0f} {so0:>13.0f} {so1:>11.0f}")
    checks["RSS growth under 10 % per segment"] = rss_ok
    first, last = segments[0].load_samples(), segments[-1].load_samples()
    if first and last:
        rss0, rss1 = median_of(first, "rss_kb", True), median_of(last, "rss_kb", False)
        print(f"over the whole soak (first segment's start -> last segment's end, different "
              f"processes): RSS {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MB "
              f"({rss1 / rss0 - 1:+.1%}), fds {median_of(first, 'fds', True):.0f} -> "
              f"{median_of(last, 'fds', False):.0f}")
    checks["no leaked fds or sockets"] = fds_ok
    if server_start and server_end:
        print(f"fake server: RSS {server_start[0] / 1024:.1f} -> {server_end[0] / 1024:.1f} MB, "
              f"fds {server_start[1]} -> {server_end[1]}, sockets {server_start[2]} -> "
              f"{server_end[2]}")
    print()
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    print(f"client output: {log}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
