"""`reasonperf calibrate`, `simulate` and `validate-sim` (registered on the app in cli.py).

Bad input is one line ``error: ...`` and exit code 2 (a ``UsageError``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from reasonperf.errors import UsageError


def _guarded(fn: Callable[[], None]) -> None:
    try:
        fn()
    except UsageError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        raise typer.Exit(2) from None


def _load_cal(path: Path) -> dict[str, Any]:
    try:
        cal = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UsageError(f"--calibration {path}: cannot read it ({err}); "
                         "make one with `reasonperf calibrate RUN -o CAL.json`") from None
    if not isinstance(cal, dict) or "step_time" not in cal:
        raise UsageError(f"--calibration {path}: not a calibration file (no step_time)")
    return cal


def _slos(values: list[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value) if sep else float("nan")
        except ValueError:
            out[name.strip()] = float("nan")
        if not sep or not np.isfinite(out[name.strip()]):
            raise UsageError(f"--slo expects NAME=SECONDS, e.g. ttfvt=30 (got {item!r})")
    return out


def _sweep(spec: str) -> tuple[str, list[float]]:
    key, sep, rng = spec.partition("=")
    parts = rng.split(":")
    if key != "rate" or not sep or len(parts) != 3:
        raise UsageError(f"--sweep expects rate=START:STOP:STEP, e.g. rate=0.5:8:0.5 (got {spec!r})")
    try:
        a, b, s = (float(p) for p in parts)
    except ValueError:
        raise UsageError(f"--sweep {spec!r}: START, STOP and STEP must be numbers") from None
    if s <= 0 or b < a or a <= 0:
        raise UsageError(f"--sweep {spec!r}: need 0 < START <= STOP and STEP > 0")
    return key, [float(x) for x in np.arange(a, b + s / 2, s)]


def calibrate_cmd(
    runs: list[Path] = typer.Argument(..., help="Measured run directories."),
    out: Path = typer.Option(..., "-o", "--out", help="Where to write the calibration JSON."),
    kv_blocks: int | None = typer.Option(None, "--kv-blocks", help="Override: the engine's KV blocks (default: from the run)."),
    block_size: int | None = typer.Option(None, "--block-size"),
    max_num_seqs: int | None = typer.Option(None, "--max-num-seqs"),
    max_num_batched_tokens: int | None = typer.Option(None, "--max-num-batched-tokens"),
) -> None:
    """Fit the simulator's step-time model from measured runs."""

    def go() -> None:
        from reasonperf.analysis.loader import load_run
        from reasonperf.sim.calibrate import calibrate

        over = {"kv_blocks": kv_blocks, "block_size": block_size, "max_num_seqs": max_num_seqs,
                "max_num_batched_tokens": max_num_batched_tokens}
        cal = calibrate([load_run(r) for r in runs], over)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(cal, indent=2))
        st, fit = cal["step_time"], cal["fit"]
        Console().print(
            f"calibrated from {len(runs)} run(s), {fit['gap_samples']} chunk gaps: "
            f"c_step {st['c_step'] * 1e3:.3f} ms, c_seq {st['c_seq'] * 1e6:.2f} us, "
            f"c_kv {st['c_kv'] * 1e9:.3f} ns/token, c_prefill {st['c_prefill'] * 1e6:.3f} us/token"
            f"; replay error (median E2E + TTFT APE) {fit['replay_error']:.1%}; "
            f"KV {cal['engine']['kv_tokens']} tokens "
            f"({cal['engine']['kv_source']}) -> {out}")

    _guarded(go)


def simulate_cmd(
    calibration: Path | None = typer.Option(None, "--calibration", help="CAL.json from `calibrate`."),
    gpu: str | None = typer.Option(None, "--gpu", help="Without --calibration: a roofline prior for this GPU (a100-80gb, h100, h200, l40s)."),
    model_config: Path | None = typer.Option(None, "--model-config", help="With --gpu: the model's HF config.json (or its folder)."),
    tp: int = typer.Option(1, "--tp", help="With --gpu: tensor-parallel GPUs."),
    workload: Path = typer.Option(..., "--workload", help="A measured run: lengths (and, with --arrival replay, arrivals)."),
    arrival: str = typer.Option("replay", "--arrival", help="replay | poisson | gamma | constant | batch"),
    rate: float | None = typer.Option(None, "--rate", help="Requests per second (open arrivals)."),
    cv: float | None = typer.Option(None, "--cv", help="Gamma arrivals: coefficient of variation."),
    num_requests: int | None = typer.Option(None, "--num-requests", help="Requests to draw (default: as many as the workload run has)."),
    max_num_seqs: int | None = typer.Option(None, "--max-num-seqs"),
    max_num_batched_tokens: int | None = typer.Option(None, "--max-num-batched-tokens"),
    kv_blocks: int | None = typer.Option(None, "--kv-blocks", help="KV cache blocks as vLLM's num_gpu_blocks counts them (default: the calibrated engine's)."),
    block_size: int | None = typer.Option(None, "--block-size"),
    kv_dtype: str = typer.Option("auto", "--kv-dtype", help="auto | fp8: fp8 doubles the blocks."),
    kv_read_factor: float = typer.Option(1.0, "--kv-read-factor", help="Scale of the KV-read term (FP8 with a fused kernel: ~0.5)."),
    spec_k: int = typer.Option(0, "--spec-k", help="Speculative decoding: drafts per step."),
    acceptance: float = typer.Option(0.0, "--acceptance", help="Mean per-position acceptance (default: measured by the engine in the calibration runs)."),
    seed: int = typer.Option(0, "--seed"),
    policy: str = typer.Option("vllm-v1", "--policy", help="Scheduler policy: vllm-v1 | sglang."),
    sample_interval: float = typer.Option(0.5, "--sample-interval", help="Timeline tick (s)."),
    slo: list[str] | None = typer.Option(None, "--slo", help="NAME=SECONDS (ttft, ttfvt, e2e)."),
    sweep: str | None = typer.Option(None, "--sweep", help="rate=START:STOP:STEP: find the goodput knee."),
    out: Path | None = typer.Option(None, "--out", help="Run directory to write (not with --sweep)."),
) -> None:
    """Simulate a what-if and write it as a run directory (or sweep the rate)."""

    def go() -> None:
        from reasonperf.sim import whatif

        if calibration is not None:
            cal = _load_cal(calibration)
        elif gpu and model_config:
            cal = whatif.prior_calibration(gpu, model_config, tp=tp)
        else:
            raise UsageError("--calibration CAL.json is required (or --gpu NAME with "
                             "--model-config CONFIG.json for a roofline prior)")
        setup = whatif.Setup(
            cal=cal, workload_dir=workload, arrival=arrival, rate=rate, cv=cv,
            num_requests=num_requests, max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens, kv_blocks=kv_blocks,
            block_size=block_size, kv_dtype=kv_dtype, kv_read_factor=kv_read_factor,
            spec_k=spec_k, acceptance=acceptance, seed=seed, sample_interval=sample_interval,
            slo=_slos(slo), policy=policy)
        console = Console()
        if sweep:
            _, rates = _sweep(sweep)
            rows, knee = whatif.sweep_rates(setup, rates)
            _print_sweep(console, rows, knee, setup.slo)
            return
        if out is None:
            raise UsageError("--out DIR is required (where the simulated run is written)")
        t0 = time.perf_counter()
        store, res = whatif.run_to_dir(setup, out)
        console.print(f"simulated {len(res.done_s)} requests: {res.steps} steps, "
                      f"{res.total_preemptions} preemptions, makespan {res.makespan_s:.1f} s, "
                      f"in {time.perf_counter() - t0:.2f} s -> {store.dir}")

    _guarded(go)


def _print_sweep(console: Console, rows: list[dict[str, Any]], knee: float | None,
                 slo: dict[str, float]) -> None:
    table = Table(title="rate sweep (simulated)")
    for col in ("rate", "throughput req/s", "goodput req/s", "SLO met", "TTFT p90 s",
                "E2E p90 s", "preemptions", "peak KV"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"{r['rate']:g}", f"{r['throughput']:.3f}", f"{r['goodput']:.3f}",
                      f"{r['attainment']:.0%}", f"{r['ttft_p90']:.2f}", f"{r['e2e_p90']:.1f}",
                      str(r["preemptions"]), f"{r['peak_kv']:.2f}")
    console.print(table)
    what = "SLO attainment >= 90 %" if slo else "throughput >= 95 % of the offered rate"
    console.print(f"goodput knee: {knee:g} req/s ({what})" if knee is not None
                  else f"goodput knee: below the lowest rate ({what} nowhere)")


def validate_cmd(
    run: Path = typer.Argument(..., help="The measured run to replay."),
    calibration: Path = typer.Option(..., "--calibration"),
    out: Path = typer.Option(..., "--out", help="Folder for validation.json and the simulated run."),
    kv_blocks: int | None = typer.Option(None, "--kv-blocks", help="Override: the engine's KV blocks (default: from the run)."),
    block_size: int | None = typer.Option(None, "--block-size"),
    max_num_seqs: int | None = typer.Option(None, "--max-num-seqs"),
    max_num_batched_tokens: int | None = typer.Option(None, "--max-num-batched-tokens"),
) -> None:
    """Replay a measured run in the simulator and report its errors."""

    def go() -> None:
        from reasonperf.sim import whatif

        over = {"kv_blocks": kv_blocks, "block_size": block_size, "max_num_seqs": max_num_seqs,
                "max_num_batched_tokens": max_num_batched_tokens}
        result = whatif.validate_run(run, _load_cal(calibration), out, over)
        _print_validation(Console(), result)

    _guarded(go)


def _print_validation(console: Console, v: dict[str, Any]) -> None:
    def pct(x: Any) -> str:
        return "n/a" if x is None else f"{x:+.1%}"

    table = Table(title=f"simulated vs measured ({v['requests']} requests)")
    for col in ("metric", "mean", "p50", "p90", "p99", "MAPE", "Pearson r"):
        table.add_column(col, justify="right")
    for k in ("e2e", "ttft", "ttfvt"):
        r = v.get(f"{k}_pearson_r")
        mape = v.get(f"{k}_mape")
        table.add_row(k.upper(), pct(v.get(f"{k}_mean_err")), pct(v.get(f"{k}_p50_err")),
                      pct(v.get(f"{k}_p90_err")), pct(v.get(f"{k}_p99_err")),
                      "n/a" if mape is None else f"{mape:.1%}",
                      "n/a" if r is None else f"{r:.3f}")
    console.print(table)
    traj = ", ".join(f"{k} RMSE {v[k + '_rmse']:.3f}" for k in ("running", "waiting", "kv_usage")
                     if v.get(k + "_rmse") is not None)
    console.print(f"makespan {pct(v.get('makespan_err'))}; {traj}; preemptions "
                  f"{v.get('preemptions_simulated')} simulated vs {v.get('preemptions_measured')} "
                  f"measured ({pct(v.get('preemptions_err'))})")


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate_cmd)
    app.command("simulate")(simulate_cmd)
    app.command("validate-sim")(validate_cmd)
