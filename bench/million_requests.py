"""Any size (issue 10.6): the client's memory stays flat in the number of requests.

Runs ``reasonperf run`` (its own process) against the fake server (another process) for
N tiny requests in a closed loop and samples the client's RSS every 0.25 s, split into
the phases of a run: sending, fold (logs to Parquet; ends when timeline.parquet, the
fold's last file, is written), grading (ends when grading rewrites requests.parquet) and
the summary (until the client exits). Prints the peak RSS of each phase, the RSS slope
per 100,000 requests while sending (a linear fit after the first 10 % of requests), and
the rate. Target: peak RSS < 500 MB at 1,000,000 requests; run it at two sizes and
extrapolate each phase's peak linearly to 1M.

    .venv/bin/python bench/million_requests.py [--num-requests 1000000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fake_server", "--ttft", "0", "--itl", "0",
         "--answer-tokens", "1", "--reasoning-tokens", "0"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


class LineCounter:
    """Lines appended to a growing file, read incrementally (the bench's own memory and
    time stay small)."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.pos = 0
        self.lines = 0

    def count(self, out: Path) -> int:
        if self.path is None:
            found = list(out.glob("*/requests.jsonl"))
            if not found:
                return 0
            self.path = found[0]
        with self.path.open("rb") as fh:
            fh.seek(self.pos)
            data = fh.read()
        self.pos += len(data)
        self.lines += data.count(b"\n")
        return self.lines


PHASES = ("fold", "grading", "summary")


def _phase(run_dir: Path, previous: str) -> str:
    """Which end-of-run phase the client is in, from the files it has written so far
    (phases only move forward)."""
    timeline, requests = run_dir / "timeline.parquet", run_dir / "requests.parquet"
    try:
        now = ("fold" if not timeline.exists() else
               "grading" if requests.stat().st_mtime <= timeline.stat().st_mtime else "summary")
    except FileNotFoundError:
        now = "fold"
    return max(now, previous, key=PHASES.index)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--num-requests", type=int, default=1_000_000)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    n = args.num_requests

    server, url = start_server()
    out = Path(tempfile.mkdtemp(prefix="rp-million-"))
    cmd = [sys.executable, "-m", "reasonperf", "run", "--endpoint", url, "--model", "fake-model",
           "--workload", "procedural", "--limit", "50", "--num-requests", str(n),
           "--arrival", "concurrency", "--concurrency", str(args.concurrency),
           "--max-tokens", "4", "--continuous-usage", "off", "--no-text",
           "--out", str(out), "--sample-interval", "5"]
    t0 = time.monotonic()
    client = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "COLUMNS": "120"})
    ps = psutil.Process(client.pid)
    counter = LineCounter()
    send: list[tuple[float, int, float]] = []  # (t, requests done, rss MB)
    end: dict[str, list[float]] = {p: [] for p in PHASES}
    phase = PHASES[0]
    t_sent = None
    try:
        while client.poll() is None:
            try:
                rss = ps.memory_info().rss / 2**20
            except psutil.NoSuchProcess:
                break
            done = counter.count(out)
            if t_sent is None:
                send.append((time.monotonic() - t0, done, rss))
                if done >= n:
                    t_sent = time.monotonic() - t0
            else:
                assert counter.path is not None
                phase = _phase(counter.path.parent, phase)
                end[phase].append(rss)
            time.sleep(0.25)
        _, err = client.communicate()
    finally:
        server.terminate()
        if client.poll() is None:
            client.kill()
    total = time.monotonic() - t0
    if client.returncode != 0:
        print(err[-2000:])
        raise SystemExit(f"client exited {client.returncode}")
    arr = np.array(send)
    warm = arr[arr[:, 1] >= 0.1 * n]
    slope = np.polyfit(warm[:, 1], warm[:, 2], 1)[0] * 100_000 if len(warm) > 2 else float("nan")
    peak_send = float(arr[:, 2].max())
    rate = n / t_sent if t_sent else float("nan")
    print(f"requests                 {n:,} (closed loop, concurrency {args.concurrency})")
    print(f"sending                  {t_sent or float('nan'):.1f} s ({rate:,.0f} req/s); run total {total:.1f} s")
    print(f"peak RSS while sending   {peak_send:,.0f} MB")
    print(f"RSS slope while sending  {slope:+,.1f} MB per 100,000 requests")
    for phase, samples in end.items():
        peak_phase = f"{max(samples):,.0f} MB" if samples else "- (no sample: under 0.25 s)"
        print(f"peak RSS {phase:<15} {peak_phase}")
    peak = max([peak_send, *(max(v) for v in end.values() if v)])
    print(f"peak RSS                 {peak:,.0f} MB  ({'under' if peak < 500 else 'OVER'} 500 MB)")
    print(f"run directory            {out}")


if __name__ == "__main__":
    main()
