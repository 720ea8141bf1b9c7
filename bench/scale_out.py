"""Scale-out benchmark: 1 vs 2 local client workers against one fake server.

The fake server (tests/fake_server.py) runs in its own process, pinned to the last core
when the host allows it; each step runs ``reasonperf run`` in-process through the local
launcher (``--workers``) or a single worker, at a constant open-loop rate, and prints
per step: workers, offered and achieved req/s, req/s and chunks/s per worker, dispatch
lag (sent_s - scheduled_s) p50/p99 and the headroom warning when one fired. Rates go up
until one worker falls behind (p99 > 1 ms or achieved < 95 %), so the 2-worker line at
the same rate shows whether sharding holds it.

    PYTHONPATH=src .venv/bin/python bench/scale_out.py [--rates 100,200,400] [--seconds 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from rich.console import Console

from reasonperf.config import load_run_spec
from reasonperf.run import execute_run
from reasonperf.scaleout.local import run_local

ROOT = Path(__file__).resolve().parents[1]


def start_server(tokens: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "tests.fake_server", "--itl", "0", "--answer-tokens",
           str(tokens), "--reasoning-tokens", "0"]
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1 and os.path.exists("/usr/bin/taskset"):
        cmd = ["taskset", "-c", str(cores[-1]), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def one(url: str, out: Path, rate: float, seconds: float, workers: int) -> dict[str, object]:
    n = int(rate * seconds)
    spec = load_run_spec({
        "name": f"w{workers}-r{rate:g}", "out": str(out),
        "engine": {"kind": "external", "url": url, "model": "fake-model"},
        "workload": {"name": "procedural", "limit": 50, "num_requests": n},
        "arrival": {"name": "constant", "rate": rate}, "grade": False,
        "continuous_usage": "off",
    })
    console = Console(stderr=True, quiet=True)
    if workers == 1:
        res = execute_run(spec, console=console)
        run_dir, summary = res.run_dir, res.summary
    else:
        run_dir, summary, _failures = run_local(spec, workers, console)
    req = pq.read_table(run_dir / "requests.parquet").to_pylist()
    chunks = pq.read_table(run_dir / "chunks.parquet").num_rows
    sent = np.array([r["sent_s"] for r in req if r["sent_s"] is not None])
    lag = np.array([r["sent_s"] - r["scheduled_s"] for r in req if r["sent_s"] is not None]) * 1e3
    done = max(r["done_s"] for r in req if r["done_s"] is not None)
    span = float(sent.max() - sent.min())
    achieved = (len(sent) - 1) / span if span > 0 else 0.0
    window = done - float(sent.min())
    warned = any(str(w).startswith("client headroom") or "client headroom" in str(w)
                 for w in summary.get("warnings", []))
    return {"workers": workers, "rate": rate, "achieved": achieved,
            "per_worker_req_s": achieved / workers, "per_worker_chunk_s": chunks / window / workers,
            "lag_p50_ms": float(np.percentile(lag, 50)), "lag_p99_ms": float(np.percentile(lag, 99)),
            "errors": summary["requests"]["errors"], "headroom_warning": warned}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rates", default="100,200,400,800")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--tokens", type=int, default=32, help="chunks per request")
    args = ap.parse_args()
    proc, url = start_server(args.tokens)
    print(f"host: {os.cpu_count()} cores; fake server {url} ({args.tokens} chunks/request)")
    print(f"{'workers':>7} {'rate':>6} {'achieved':>9} {'req/s/w':>8} {'chunk/s/w':>10} "
          f"{'lag p50':>8} {'lag p99':>8} {'err':>4}  headroom")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rate in (float(r) for r in args.rates.split(",")):
                for workers in (1, 2):
                    r = one(url, Path(tmp), rate, args.seconds, workers)
                    print(f"{r['workers']:>7} {r['rate']:>6g} {r['achieved']:>9.1f} "
                          f"{r['per_worker_req_s']:>8.1f} {r['per_worker_chunk_s']:>10.0f} "
                          f"{r['lag_p50_ms']:>7.2f}m {r['lag_p99_ms']:>7.2f}m {r['errors']:>4}  "
                          f"{'WARN' if r['headroom_warning'] else 'ok'}", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
