"""The reasonperf command line: parse, call one function, print.

Every command goes through ``_guard``: a UsageError (bad input, unreachable endpoint,
engine that will not start) is printed as one line and exits with code 2, no traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from reasonperf.cli_doctor import doctor as doctor_command
from reasonperf.cli_doctor import engine_check as engine_check_command
from reasonperf.cli_findings import findings as findings_command
from reasonperf.cli_scale import register as register_scale_commands
from reasonperf.cli_scale import sharded_run
from reasonperf.cli_sim import register as register_sim_commands
from reasonperf.cli_study import study as study_command
from reasonperf.cli_workload import fit as workload_fit_command
from reasonperf.cli_workload import workload_app
from reasonperf.errors import UsageError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Benchmark served reasoning LLMs: accuracy, service end, user end.",
)
engine_app = typer.Typer(no_args_is_help=True, help="Prepare the embedded engine and models.")
app.add_typer(engine_app, name="engine")
app.command("study")(study_command)
register_sim_commands(app)  # calibrate, simulate, validate-sim

F = TypeVar("F", bound=Callable[..., Any])


def _err_console() -> Console:
    return Console(stderr=True)


def _guard(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UsageError as err:
            from reasonperf.redact import redact_text

            msg = redact_text(" ".join(str(err).split()))
            print(f"error: {msg}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


app.command("findings")(_guard(findings_command))
app.command("doctor")(_guard(doctor_command))
engine_app.command("check")(_guard(engine_check_command))
register_scale_commands(app, _guard)  # selfcheck, merge (cli_scale.py)
app.add_typer(workload_app, name="workload")
workload_app.command("fit")(_guard(workload_fit_command))


def _not(value: bool) -> bool:
    return not value


# The run command's flags -> the RunSpec: flag (parameter name) -> (section or None for the
# top level, the spec's key, a conversion). One row per flag; `spec_from_flags` applies it.
RUN_FLAGS: dict[str, tuple[str | None, str, Callable[[Any], Any] | None]] = {
    "model": ("engine", "model", None),
    "metrics_url": ("engine", "metrics_url", None),
    "api_key_env": ("engine", "api_key_env", None),
    "max_num_seqs": ("engine", "max_num_seqs", None),
    "max_model_len": ("engine", "max_model_len", None),
    "num_gpu_blocks_override": ("engine", "num_gpu_blocks_override", None),
    "reasoning_parser": ("engine", "reasoning_parser", None),
    "prefix_caching": ("engine", "enable_prefix_caching", None),
    "kv_cache_dtype": ("engine", "kv_cache_dtype", None),
    "quantization": ("engine", "quantization", None),
    "engine_arg": ("engine", "extra_args", None),
    "port": ("engine", "port", None),
    "api": (None, "api", None),
    "workload": ("workload", "name", None),
    "data_file": ("workload", "data_file", None),
    "field_map": ("workload", "field_map", lambda v: _field_map(v)),
    "option": ("workload", "options", lambda v: _options(v)),
    "limit": ("workload", "limit", None),
    "samples": ("workload", "samples", None),
    "prompt_style": ("workload", "prompt_style", None),
    "prompt_template": ("workload", "prompt_template", None),
    "num_requests": ("workload", "num_requests", None),
    "arrival": ("arrival", "name", None),
    "batch_size": ("arrival", "batch_size", None),
    "concurrency": ("arrival", "concurrency", None),
    "rate": ("arrival", "rate", None),
    "cv": ("arrival", "cv", None),
    "shape": ("arrival", "shape", None),
    "trace_file": ("arrival", "trace_file", None),
    "max_tokens": ("sampling", "max_tokens", None),
    "temperature": ("sampling", "temperature", None),
    "top_p": ("sampling", "top_p", None),
    "request_seeds": ("sampling", "request_seeds", None),
    "thinking_budget": ("sampling", "thinking_budget", None),
    "reasoning_effort": ("sampling", "reasoning_effort", None),
    "answer_reserve": ("sampling", "answer_reserve", None),
    "budget_field": ("sampling", "budget_field", None),
    "seed": (None, "seed", None),
    "timeout": (None, "timeout_s", None),
    "sample_interval": (None, "sample_interval_s", None),
    "slo": (None, "slo", lambda v: _slos(v)),
    "continuous_usage": (None, "continuous_usage", None),
    "think_open": (None, "think_open", None),
    "tokenizer": (None, "tokenizer", None),
    "no_text": (None, "store_text", _not),
    "no_grade": (None, "grade", _not),
    "out": (None, "out", None),
    "name": (None, "name", None),
    "max_error_rate": (None, "max_error_rate", None),
}


def _field_map(value: str | None) -> dict[str, str]:
    from reasonperf.workload.datasets import parse_field_map

    return parse_field_map(value)


def spec_from_flags(params: dict[str, Any], given: Callable[[str], bool],
                    data: dict[str, Any]) -> dict[str, Any]:
    """The run spec ``data`` (from --config, or empty) with the flags applied by RUN_FLAGS:
    with --config only the flags typed on the command line override it; an empty list or
    map means the flag was not used."""
    endpoint, kind = params.get("endpoint"), params.get("engine")
    if endpoint:  # an endpoint means an external engine, whatever --engine says
        data.setdefault("engine", {}).update(kind="external", url=endpoint)
    elif kind and given("engine"):
        data.setdefault("engine", {})["kind"] = kind
    for param, (section, key, convert) in RUN_FLAGS.items():
        value = params.get(param)
        if value is None or not given(param):
            continue
        value = convert(value) if convert is not None else value
        if value is None or (isinstance(value, list | dict) and not value):
            continue
        (data.setdefault(section, {}) if section else data)[key] = value
    return data


def _slos(values: list[str] | None) -> dict[str, float]:
    """--slo NAME=SECONDS (repeatable)."""
    out: dict[str, float] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--slo expects NAME=SECONDS, e.g. ttfvt=30 (got {item!r})")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--slo {name}: {value!r} is not a number of seconds") from None
    return out


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _options(values: list[str] | None) -> dict[str, Any]:
    """--option KEY=VALUE for the workload loader: VALUE is JSON when it parses, a
    comma-separated list otherwise (levels=1,3 -> [1, 3]), else plain text."""
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--option expects KEY=VALUE (got {item!r})")
        parsed = _json_or_text(value)
        if isinstance(parsed, str) and "," in parsed:
            parsed = [_json_or_text(x.strip()) for x in parsed.split(",")]
        out[key.strip()] = parsed
    return out


@app.command()
@_guard
def run(
    ctx: typer.Context,
    endpoint: str = typer.Option(None, help="OpenAI-compatible base URL (…/v1). Omit to launch an engine."),
    model: str = typer.Option(None, help="Model: served name (endpoint) or path/name to launch."),
    engine: str = typer.Option(None, help="external | vllm | sglang (default: external with --endpoint, else vllm)."),
    metrics_url: str = typer.Option(None, help="Prometheus /metrics URL of an external endpoint."),
    api: str = typer.Option("chat", help="chat or completions"),
    api_key_env: str = typer.Option("OPENAI_API_KEY", help="Environment variable holding the API key."),
    workload: str = typer.Option("procedural", help="Registered workload name or a JSONL/CSV/Parquet path."),
    data_file: str = typer.Option(None, help="Local file for a registered dataset."),
    field_map: str = typer.Option(None, help="prompt=COL,answer=COL,id=COL,difficulty=COL,domain=COL"),
    option: list[str] = typer.Option(None, help="Workload option KEY=VALUE (e.g. levels=1,3)."),
    limit: int = typer.Option(None, help="Take the first N problems."),
    samples: int = typer.Option(1, help="Repeat each problem K times (avg@K)."),
    prompt_style: str = typer.Option("r1", help="r1 | paper | plain"),
    prompt_template: str = typer.Option(None, help="Path to a prompt template file."),
    num_requests: int = typer.Option(None, help="Total requests (cut or cycle the workload)."),
    arrival: str = typer.Option("batch", help="batch | concurrency | poisson | gamma | constant | trace"),
    batch_size: int = typer.Option(None, help="batch: requests per batch (default 16, the study's)."),
    concurrency: int = typer.Option(None, help="concurrency: requests in flight (also caps open-loop)."),
    rate: float = typer.Option(None, help="poisson/gamma/constant: requests per second."),
    cv: float = typer.Option(None, help="gamma: coefficient of variation of the gaps."),
    shape: float = typer.Option(None, help="gamma: shape (= 1/cv^2)."),
    trace_file: str = typer.Option(None, help="trace: file of arrival offsets."),
    max_tokens: int = typer.Option(256, help="Token budget per request."),
    temperature: float = typer.Option(0.6),
    top_p: float = typer.Option(0.95),
    seed: int = typer.Option(0, help="Seed of arrivals, choice shuffles and procedural problems."),
    request_seeds: bool = typer.Option(False, "--request-seeds", help="Also send seed+index as each request's sampling seed."),
    thinking_budget: int = typer.Option(None, help="Thinking-token budget, sent in the engine's own field (vLLM: thinking_token_budget)."),
    reasoning_effort: str = typer.Option(None, help="low | medium | high: the chat API's reasoning_effort field."),
    answer_reserve: int = typer.Option(None, help="Keep M of max_tokens for the answer: budget = min(thinking budget, max_tokens - M)."),
    budget_field: str = typer.Option(None, help="External endpoint: the body field of the budget (default thinking_token_budget; dotted for nested)."),
    timeout: float = typer.Option(600.0, help="Per-request timeout (s)."),
    sample_interval: float = typer.Option(0.5, help="Engine /metrics sampling interval (s)."),
    slo: list[str] = typer.Option(None, help="SLO in seconds, e.g. ttfvt=30 (repeatable)."),
    continuous_usage: str = typer.Option("auto", help="auto | on | off: per-chunk token counts."),
    think_open: str = typer.Option("auto", help="yes | no | auto: the prompt pre-opens <think> (auto: from the chat template / a bare </think>)."),
    tokenizer: str = typer.Option(None, help="Local tokenizer (model dir) for token counts when the server sends no usage (default: a launched engine's model)."),
    no_text: bool = typer.Option(False, "--no-text", help="Do not store reasoning/answer text."),
    no_grade: bool = typer.Option(False, "--no-grade", help="Skip grading at the end."),
    max_num_seqs: int = typer.Option(None, help="Engine: max running sequences."),
    max_model_len: int = typer.Option(None, help="Engine: max model length."),
    num_gpu_blocks_override: int = typer.Option(None, help="Engine: KV-cache blocks (forces saturation)."),
    reasoning_parser: str = typer.Option(None, help="Engine: reasoning parser (e.g. deepseek_r1)."),
    prefix_caching: bool = typer.Option(None, "--prefix-caching/--no-prefix-caching"),
    kv_cache_dtype: str = typer.Option(None, help="Engine: KV-cache dtype (e.g. fp8_e4m3)."),
    quantization: str = typer.Option(None, help="Engine: weight quantization method."),
    engine_arg: list[str] = typer.Option(None, help="Extra engine argument (repeatable)."),
    port: int = typer.Option(None, help="Engine: port to launch on (default: a free one)."),
    config: Path = typer.Option(None, help="YAML run spec; flags given on the command line override it."),
    out: str = typer.Option("runs", help="Runs directory."),
    name: str = typer.Option("run", help="Run name (directory suffix)."),
    resume: Path = typer.Option(None, help="Resume an interrupted run directory."),
    max_error_rate: float = typer.Option(0.5, help="Fail the run (exit 1) when more than this share of requests fail."),
    retry_errors: bool = typer.Option(False, "--retry-errors", help="With --resume: also re-send requests whose records are all errors."),
    workers: int = typer.Option(None, help="Shard the load over N local client processes (one global schedule, merged)."),
    shard: str = typer.Option(None, help="Run shard I/N of a run whose shards you start yourself (with --t0; then reasonperf merge)."),
    t0: float = typer.Option(None, help="With --shard: the common start time of all shards, Unix seconds."),
) -> None:
    """Send a workload to an engine, record every request, grade and summarise."""
    from reasonperf.config import load_run_spec, load_yaml
    from reasonperf.report.console import render_summary
    from reasonperf.run import execute_run
    console = _err_console()
    if retry_errors and resume is None:
        raise UsageError("--retry-errors re-sends the failed requests of a stored run; "
                         "use it with --resume RUN_DIR")
    if resume is not None and (workers not in (None, 1) or shard is not None):
        raise UsageError("a sharded run (--workers, --shard) cannot be resumed; run it again")
    if resume is not None:
        result = execute_run(resume=resume, console=console, retry_errors=retry_errors)
        if result.nothing_to_do:
            return
    else:
        data: dict[str, Any] = load_yaml(config) if config else {}

        def given(param: str) -> bool:
            src = ctx.get_parameter_source(param)
            return config is None or (src is not None and src.name != "DEFAULT")

        data = spec_from_flags(ctx.params, given, data)
        spec = load_run_spec(data, source=str(config) if config else "options")
        result = sharded_run(spec, workers, shard, t0, console) or execute_run(spec, console=console)
    render_summary(result.summary, Console(), str(result.run_dir))
    if result.interrupted:
        print(
            f"interrupted: finished requests are saved in {result.run_dir}; "
            f"resume with: reasonperf run --resume {result.run_dir}",
            file=sys.stderr,
        )
        raise typer.Exit(130)
    if result.failure:
        print(f"error: {result.failure}", file=sys.stderr)
        raise typer.Exit(1)


@app.command()
@_guard
def summary(run_dir: Path, as_json: bool = typer.Option(False, "--json", help="Print summary.json.")) -> None:
    """Print a stored run's summary again (recomputed from its tables)."""
    from reasonperf.report.console import render_summary
    from reasonperf.store import RunStore
    from reasonperf.summary_io import write_summary

    s = write_summary(RunStore.open(run_dir))
    if as_json:
        print(json.dumps(s, indent=2, default=str))
    else:
        render_summary(s, Console(), str(run_dir))


@app.command()
@_guard
def grade(run_dir: Path) -> None:
    """(Re)grade a stored run without touching the engine."""
    from reasonperf.report.console import render_summary
    from reasonperf.store import RunStore
    from reasonperf.summary_io import write_summary

    s = write_summary(RunStore.open(run_dir), grade=True)
    render_summary(s, Console(), str(run_dir))


@engine_app.command("prepare")
@_guard
def engine_prepare() -> None:
    """Convert the embedded SmolLM2-135M model and build the tiny test models (cached)."""
    from reasonperf.engines import models

    for name, path in models.prepare_all(models.cache_dir()).items():
        print(f"{name}: {path}")


@engine_app.command("build-test-models")
@_guard
def engine_build_test_models() -> None:
    """Build the tiny local test models (random weights; a scripted reasoner)."""
    from reasonperf.engines import models

    for name, path in models.build_test_models(models.cache_dir()).items():
        print(f"{name}: {path}")


@engine_app.command("train-thinker")
@_guard
def engine_train_thinker(
    model: list[str] = typer.Option(None, help="tiny-thinker and/or tiny-instruct (default: both)."),
    out: Path = typer.Option(None, help="Where the trained models go (default: the package's weights/)."),
    work_dir: Path = typer.Option(Path("runs/train-thinker"), help="Checkpoints (rerun to resume)."),
    steps: int = typer.Option(None, help="Override the number of training steps."),
) -> None:
    """Retrain the shipped tiny-thinker / tiny-instruct from scratch on the CPU (resumable)."""
    from reasonperf.engines.thinker import MODEL_NAMES
    from reasonperf.engines.thinker.shipped import WEIGHTS_DIR
    from reasonperf.engines.thinker.train import train_shipped

    names = model or list(MODEL_NAMES)
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown:
        raise UsageError(f"--model {unknown[0]!r} is unknown; use one of {', '.join(MODEL_NAMES)}")
    for name, path in train_shipped(names, out or WEIGHTS_DIR, work_dir, steps).items():
        print(f"{name}: {path}")


def main() -> None:  # pragma: no cover
    app()


@app.command()
@_guard
def compare(
    run_dirs: list[str] = typer.Argument(..., help="Baseline first, then one or more candidates; DIR1,DIR2,... for repeats of one configuration (then CIs are over runs)."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    min_effect: float = typer.Option(10.0, "--min-effect", help="One run each: a speed verdict needs the whole CI beyond +-this % of the baseline."),
) -> None:
    """Compare runs: deltas of every headline metric with CIs (and how each was made) and a verdict."""
    from rich.table import Table as RichTable

    from reasonperf.analysis.compare import compare_sides, compare_table
    from reasonperf.analysis.loader import load_run

    if len(run_dirs) < 2:
        raise UsageError("compare needs at least two run directories (baseline first)")
    if min_effect < 0:
        raise UsageError(f"--min-effect must be >= 0 (got {min_effect:g})")
    sides = [[load_run(Path(d)) for d in arg.split(",") if d] for arg in run_dirs]
    result = compare_sides(sides, min_effect_pct=min_effect)
    if as_json:
        print(json.dumps(result.numbers, indent=2, default=str))
        return
    table = compare_table(result)
    rt = RichTable(title=table.title)
    for col in table.columns:
        rt.add_column(col)
    for row in table.rows:
        rt.add_row(*("-" if v is None else str(v) for v in row))
    console = Console()
    console.print(rt)
    for line in result.findings:
        console.print(line)


@app.command()
@_guard
def report(
    run_dirs: list[Path] = typer.Argument(..., help="One or more run directories."),
    output: Path = typer.Option(None, "-o", "--output", help="Output file (default: report.html / report.md in the first run)."),
    fmt: str = typer.Option("html", "--format", help="html (self-contained, offline) or md"),
    analysis: list[str] = typer.Option(None, help="Only these analyses (repeatable)."),
) -> None:
    """Render the study's findings for stored runs as one self-contained HTML file (or markdown)."""
    from reasonperf.analysis.loader import load_run
    from reasonperf.analysis.registry_all import run_analyses

    if fmt not in ("html", "md"):
        raise UsageError(f"--format must be html or md (got {fmt!r})")
    runs = [load_run(d) for d in run_dirs]
    results = run_analyses(runs, analysis or None)
    out = output or Path(run_dirs[0]) / f"report.{fmt}"
    if fmt == "html":
        from reasonperf.report.html import render_html

        path = render_html(runs, results, out)
    else:
        from reasonperf.report.markdown import render_markdown

        out.write_text(render_markdown(runs, results))
        path = out
    print(f"report: {path}")


@app.command()
@_guard
def query(
    sql: str = typer.Argument(..., help="DuckDB SQL over the views requests, chunks, timeline, runs."),
    root: list[Path] = typer.Option(None, help="Directory holding run directories, searched recursively (repeatable; default: runs/ and studies-out/, and $REASONPERF_RESULTS)."),
    limit: int = typer.Option(50, help="Rows to print."),
) -> None:
    """Run SQL over every stored run below ROOT."""
    from reasonperf.report.query import default_roots, rich_table
    from reasonperf.report.query import query as run_query

    Console().print(rich_table(run_query(sql, root or default_roots()), limit))
