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

from reasonperf.cli_sim import register as register_sim_commands
from reasonperf.cli_study import study as study_command
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
            msg = " ".join(str(err).split())
            print(f"error: {msg}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


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
    timeout: float = typer.Option(600.0, help="Per-request timeout (s)."),
    sample_interval: float = typer.Option(0.5, help="Engine /metrics sampling interval (s)."),
    slo: list[str] = typer.Option(None, help="SLO in seconds, e.g. ttfvt=30 (repeatable)."),
    continuous_usage: str = typer.Option("auto", help="auto | on | off: per-chunk token counts."),
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
) -> None:
    """Send a workload to an engine, record every request, grade and summarise."""
    from reasonperf.config import load_run_spec, load_yaml
    from reasonperf.report.console import render_summary
    from reasonperf.run import execute_run
    from reasonperf.workload.datasets import parse_field_map

    console = _err_console()
    if resume is not None:
        result = execute_run(resume=resume, console=console)
    else:
        data: dict[str, Any] = load_yaml(config) if config else {}

        def given(param: str) -> bool:
            src = ctx.get_parameter_source(param)
            return config is None or (src is not None and src.name != "DEFAULT")

        def put(section: str | None, key: str, param: str, value: Any) -> None:
            if value is None or not given(param):
                return
            target = data.setdefault(section, {}) if section else data
            target[key] = value

        eng_kind = engine or ("external" if endpoint else None)
        put("engine", "kind", "engine", eng_kind)
        if endpoint:
            data.setdefault("engine", {})["kind"] = "external"
            data["engine"]["url"] = endpoint
        put("engine", "model", "model", model)
        put("engine", "metrics_url", "metrics_url", metrics_url)
        put("engine", "api_key_env", "api_key_env", api_key_env)
        put("engine", "max_num_seqs", "max_num_seqs", max_num_seqs)
        put("engine", "max_model_len", "max_model_len", max_model_len)
        put("engine", "num_gpu_blocks_override", "num_gpu_blocks_override", num_gpu_blocks_override)
        put("engine", "reasoning_parser", "reasoning_parser", reasoning_parser)
        put("engine", "enable_prefix_caching", "prefix_caching", prefix_caching)
        put("engine", "kv_cache_dtype", "kv_cache_dtype", kv_cache_dtype)
        put("engine", "quantization", "quantization", quantization)
        put("engine", "extra_args", "engine_arg", engine_arg or None)
        put("engine", "port", "port", port)
        put(None, "api", "api", api)
        put("workload", "name", "workload", workload)
        put("workload", "data_file", "data_file", data_file)
        put("workload", "field_map", "field_map", parse_field_map(field_map) or None)
        put("workload", "options", "option", _options(option) or None)
        put("workload", "limit", "limit", limit)
        put("workload", "samples", "samples", samples)
        put("workload", "prompt_style", "prompt_style", prompt_style)
        put("workload", "prompt_template", "prompt_template", prompt_template)
        put("workload", "num_requests", "num_requests", num_requests)
        put("arrival", "name", "arrival", arrival)
        put("arrival", "batch_size", "batch_size", batch_size)
        put("arrival", "concurrency", "concurrency", concurrency)
        put("arrival", "rate", "rate", rate)
        put("arrival", "cv", "cv", cv)
        put("arrival", "shape", "shape", shape)
        put("arrival", "trace_file", "trace_file", trace_file)
        put("sampling", "max_tokens", "max_tokens", max_tokens)
        put("sampling", "temperature", "temperature", temperature)
        put("sampling", "top_p", "top_p", top_p)
        put(None, "seed", "seed", seed)
        put("sampling", "request_seeds", "request_seeds", request_seeds)
        put(None, "timeout_s", "timeout", timeout)
        put(None, "sample_interval_s", "sample_interval", sample_interval)
        put(None, "slo", "slo", _slos(slo) or None)
        put(None, "continuous_usage", "continuous_usage", continuous_usage)
        put(None, "store_text", "no_text", not no_text)
        put(None, "grade", "no_grade", not no_grade)
        put(None, "out", "out", out)
        put(None, "name", "name", name)
        spec = load_run_spec(data, source=str(config) if config else "options")
        result = execute_run(spec, console=console)
    render_summary(result.summary, Console(), str(result.run_dir))
    if result.interrupted:
        print(
            f"interrupted: finished requests are saved in {result.run_dir}; "
            f"resume with: reasonperf run --resume {result.run_dir}",
            file=sys.stderr,
        )
        raise typer.Exit(130)


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


def main() -> None:  # pragma: no cover
    app()


@app.command()
@_guard
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="Baseline run first, then one or more candidates."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Compare runs: deltas of every headline metric with bootstrap CIs and a verdict."""
    from rich.table import Table as RichTable

    from reasonperf.analysis.compare import compare_runs, compare_table
    from reasonperf.analysis.loader import load_run

    if len(run_dirs) < 2:
        raise UsageError("compare needs at least two run directories (baseline first)")
    result = compare_runs([load_run(d) for d in run_dirs])
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
    root: Path = typer.Option(Path("runs"), help="Directory holding run directories (searched recursively)."),
    limit: int = typer.Option(50, help="Rows to print."),
) -> None:
    """Run SQL over every stored run below ROOT."""
    from reasonperf.report.query import query as run_query
    from reasonperf.report.query import rich_table

    Console().print(rich_table(run_query(sql, root), limit))
