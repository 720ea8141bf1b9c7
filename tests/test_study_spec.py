"""Study specs: validation with one-line errors naming the field, matrix expansion, cell
ids, exclusions, repeats, profiles, skip reasons and engine grouping. No engine runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reasonperf.errors import UsageError
from reasonperf.study import expand as expand_mod
from reasonperf.study.expand import plan_study
from reasonperf.study.runner import check_settings, write_json
from tests.conftest import run_cli

STUDIES = Path(__file__).resolve().parents[1] / "studies"
BUNDLED = sorted((STUDIES / "paper").glob("*.yaml")) + [STUDIES / "quickstart.yaml"]


def _write(tmp_path: Path, data: dict, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _study(tmp_path: Path, **over) -> Path:
    data = {
        "name": "t",
        "base": {"engine": {"kind": "vllm", "model": "m"},
                 "workload": {"name": "procedural", "limit": 4}},
        "matrix": {"max_tokens": [32, 64]},
    }
    data.update(over)
    return _write(tmp_path, data)


# --------------------------------------------------------------------------- bundled specs


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_bundled_specs_expand(path):
    plan = plan_study(path)
    assert plan.cells and len({c.id for c in plan.cells}) == len(plan.cells)
    assert sum(len(g.cells) for g in plan.groups) == len(plan.cells)
    assert plan.spec.reported.strip(), "each spec says what the study reported"
    if path.parent.name == "paper":
        assert "cpu" in plan.spec.profiles
        # the study's defaults: T=0.6, top_p=0.95, 3 samples, 100 problems (30 for AIME)
        for cell in plan.cells:
            assert (cell.spec.sampling.temperature, cell.spec.sampling.top_p) == (0.6, 0.95)
            assert cell.spec.workload.samples == 3
            assert cell.spec.workload.limit in (100, None)


@pytest.mark.parametrize("path", [p for p in BUNDLED if p.parent.name == "paper"],
                         ids=lambda p: p.stem)
def test_paper_specs_cpu_profile_uses_local_models_and_small_settings(path):
    plan = plan_study(path, profile="cpu")
    runnable = [c for c in plan.cells if not c.skip]
    assert runnable, "the cpu profile leaves something to run"
    for cell in plan.cells:
        assert cell.spec.engine.model.startswith("builtin:")
        assert cell.spec.workload.limit <= 4 and cell.spec.workload.samples == 1
        assert cell.spec.sampling.max_tokens <= 64
    assert len({c.group for c in runnable}) <= 3  # engine starts on the CPU


def test_quantization_cpu_profile_records_why_arms_are_skipped(monkeypatch):
    monkeypatch.setattr(expand_mod, "is_cpu_vllm", lambda: True)
    plan = plan_study(STUDIES / "paper" / "quantization.yaml", profile="cpu")
    reasons = {c.levels["weights"]: c.skip for c in plan.cells}
    assert reasons["bf16"] is None
    assert "GPTQ/AWQ" in reasons["gptq"] and "GPTQ/AWQ" in reasons["awq"]
    assert "CUDA" in reasons["fp8"] and "CUDA" in reasons["bitsandbytes"]


def test_dry_run_cli_prints_the_cells_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("study", str(STUDIES / "quickstart.yaml"), "--dry-run", "--out", str(out),
                   timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "4 cells: 4 to run" in proc.stdout
    assert "2 engine groups" in proc.stdout
    assert not out.exists()


# --------------------------------------------------------------------------- invalid specs

BAD = [
    ({"matrx": {}}, "matrx: unknown field"),
    ({"base": {"sampling": {"max_tokenz": 3}}}, "base.sampling.max_tokenz: unknown field"),
    ({"repeats": "many"}, "repeats: "),
    ({"matrix": {"max_tokens": []}}, "matrix.max_tokens: axis is empty"),
    ({"matrix": {"max_tokens": ["lots"]}}, "matrix.max_tokens.0: "),
    ({"matrix": {"arm": {"a": {"engine": {"max_num_seqs": "x"}}}}},
     "matrix.arm.a.engine.max_num_seqs: "),
    ({"exclude": [{"budget": 32}]}, "exclude.0.budget: not an axis"),
]


@pytest.mark.parametrize(("over", "needle"), BAD, ids=[n.split(":")[0] for _, n in BAD])
def test_invalid_spec_is_one_line_naming_the_field_exit_2(tmp_path, over, needle):
    path = _study(tmp_path, **over)
    proc = run_cli("study", str(path), "--out", str(tmp_path / "out"), timeout=120)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"error: {path}: {needle}"), err
    assert not (tmp_path / "out").exists()


def test_unknown_profile_names_the_defined_ones(tmp_path):
    path = _study(tmp_path, profiles={"cpu": {"repeats": 2}})
    with pytest.raises(UsageError, match=r"profiles\.gpu: no such profile; defined: cpu"):
        plan_study(path, profile="gpu")


def test_bad_profile_field_names_its_path(tmp_path):
    path = _study(tmp_path, profiles={"cpu": {"matrx": {}}})
    with pytest.raises(UsageError, match=r"profiles\.cpu\.matrx: unknown field"):
        plan_study(path, profile="cpu")


def test_arrival_settings_are_checked_at_planning(tmp_path):
    path = _study(tmp_path, matrix={"arrival": {"gamma": {"name": "gamma"}}})
    with pytest.raises(UsageError, match=r"matrix\.arrival\.gamma: arrival 'gamma' needs --rate"):
        plan_study(path)


def test_ambiguous_leaf_name_asks_for_the_full_path(tmp_path):
    path = _study(tmp_path, matrix={"name": ["a"], "batch_size": [1]})  # "name" is top-level
    assert plan_study(path).cells[0].levels == {"name": "a", "batch_size": "1"}
    path = _study(tmp_path, matrix={"limits": [1]})
    with pytest.raises(UsageError, match=r"matrix\.limits: is not a run field"):
        plan_study(path)


# --------------------------------------------------------------------------- expansion


def test_cells_are_the_product_minus_exclusions_with_readable_stable_ids(tmp_path):
    path = _study(tmp_path, matrix={
        "max_tokens": [32, 64],
        "arm": {"small": {"engine": {"max_num_seqs": 4}},
                "big": {"engine": {"max_num_seqs": 32}, "sampling": {"temperature": 0.0}}},
        "enable_prefix_caching": {"on": True, "off": False},
    }, exclude=[{"arm": "big", "enable_prefix_caching": "off"}])
    plan = plan_study(path)
    ids = [c.id for c in plan.cells]
    assert ids[0] == "max_tokens-32__arm-small__enable_prefix_caching-on"
    assert len(ids) == 2 * 2 * 2 - 2 and plan.excluded == 2
    assert not any("arm-big" in i and "caching-off" in i for i in ids)
    assert ids == [c.id for c in plan_study(path).cells]  # stable across loads
    big = next(c for c in plan.cells if c.levels["arm"] == "big")
    assert big.spec.engine.max_num_seqs == 32 and big.spec.sampling.temperature == 0.0
    assert big.spec.engine.model == "m"  # arms merge into the base engine
    assert big.spec.name == big.id and big.spec.workload.limit == 4


def test_engine_groups_restart_only_when_the_engine_changes(tmp_path):
    # the engine axis varies fastest, yet each engine spec forms one group
    path = _study(tmp_path, matrix={"max_tokens": [32, 64, 128],
                                    "kv_cache_dtype": ["auto", "fp8_e4m3"]})
    plan = plan_study(path)
    assert len(plan.cells) == 6 and len(plan.groups) == 2
    for group in plan.groups:
        assert len({c.spec.engine.kv_cache_dtype for c in group.cells}) == 1
        assert [c.spec.sampling.max_tokens for c in group.cells] == [32, 64, 128]


def test_repeats_and_limit(tmp_path):
    path = _study(tmp_path, repeats=2)
    plan = plan_study(path, limit=2)
    assert [c.id for c in plan.cells] == ["max_tokens-32__r1", "max_tokens-32__r2",
                                          "max_tokens-64__r1", "max_tokens-64__r2"]
    assert plan.cells[0].spec_hash == plan.cells[1].spec_hash  # a repeat is the same cell
    assert all(c.spec.workload.limit == 2 for c in plan.cells)
    with pytest.raises(UsageError, match="--limit must be >= 1"):
        plan_study(path, limit=0)


def test_profile_rewrites_base_and_axes(tmp_path):
    path = _study(tmp_path, matrix={"max_tokens": [4096, 8192], "seed": [1, 2]},
                  profiles={"cpu": {"base": {"engine": {"model": "builtin:tiny-random"}},
                                    "matrix": {"max_tokens": [32], "seed": None}}})
    plan = plan_study(path, profile="cpu")
    assert [c.id for c in plan.cells] == ["max_tokens-32"]
    assert plan.cells[0].spec.engine.model == "builtin:tiny-random"
    assert "(profile cpu)" in plan.source


def test_skip_rules_keep_the_cell_with_its_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(expand_mod, "is_cpu_vllm", lambda: True)
    monkeypatch.setattr(expand_mod, "cpu_flags", lambda: frozenset({"sse2"}))
    path = _study(tmp_path, matrix={"kv_cache_dtype": ["auto", "fp8_e5m2"],
                                    "max_tokens": [32, 64]},
                  skip=[{"max_tokens": 64, "reason": "too slow here"}])
    skips = {c.id: c.skip for c in plan_study(path).cells}
    assert skips["kv_cache_dtype-auto__max_tokens-32"] is None
    assert skips["kv_cache_dtype-auto__max_tokens-64"] == "too slow here"
    assert "AVX-512 or AMX" in skips["kv_cache_dtype-fp8_e5m2__max_tokens-32"]


def test_an_edited_spec_does_not_mix_with_finished_cells(tmp_path):
    plan = plan_study(_study(tmp_path), out=tmp_path / "out")
    cell = plan.cells[0]
    (plan.root / cell.id).mkdir(parents=True)
    write_json(plan.root / cell.id / "cell.json", {"status": "ok", "spec_hash": cell.spec_hash})
    check_settings(plan)  # same settings: fine
    edited = plan_study(_study(tmp_path, base={"engine": {"kind": "vllm", "model": "other"},
                                               "workload": {"name": "procedural"}}),
                        out=tmp_path / "out")
    with pytest.raises(UsageError, match="other settings"):
        check_settings(edited)
