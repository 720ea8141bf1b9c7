"""Study specs: a base run spec, matrix axes over its fields, exclusions, repeats, profiles.

A study file is YAML validated in two steps. Pydantic checks the shape (unknown fields,
wrong types); ``check_study`` then checks what pydantic cannot see (axis paths, empty
axes, rules naming axes and levels that exist). Every error is one line naming the
dotted path of the bad field in the file, e.g.
``studies/x.yaml: matrix.max_tokens: axis is empty; give at least one value``.

Axes (``matrix:``), in the order written (the order of cell ids and of the run):

* a run field by dotted path (``sampling.max_tokens``) or by a leaf name that only one
  field has (``max_tokens``); levels are a list of values, or a mapping from level names
  to values (``enable_prefix_caching: {on: true, off: false}``). A section path
  (``engine``, ``workload``, ``arrival``, ``sampling``) takes mappings that are merged
  into the base section: named engine arms are ``engine: {bf16: {}, fp8: {...}}``;
* any other key names an axis of its own whose levels are partial run specs merged into
  the base, so one level can set several sections at once (``arm: {llm: {engine:
  {...}, sampling: {...}}}``).

A profile (``profiles: {cpu: {...}}``) rewrites the study for another machine: its
``base`` is merged into the base, each axis it names replaces that axis (``null``
removes it), and its other fields replace the study's.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reasonperf.config import RunSpec, load_yaml, spec_error_line
from reasonperf.errors import UsageError

SECTION, LEAF, MAPPING = "section", "leaf", "mapping"
REASON_KEY = "reason"  # the key of a skip rule that holds its reason
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ReportSpec(BaseModel):
    """What the study report shows."""

    model_config = ConfigDict(extra="forbid")

    html: bool = True
    # analyses to run; None = every registered one (budget curves need several budgets)
    analyses: list[str] | None = None
    # axes whose levels are compared cell against cell (the first level is the baseline);
    # None = every axis that changes the engine or names its own arms
    compare: list[str] | None = None


class ProfileSpec(BaseModel):
    """A named rewrite of the study (``--profile NAME``)."""

    model_config = ConfigDict(extra="forbid")

    description: str = ""
    base: dict[str, Any] = Field(default_factory=dict)
    matrix: dict[str, Any] = Field(default_factory=dict)  # axis -> levels, or None to drop it
    exclude: list[dict[str, Any]] | None = None
    skip: list[dict[str, Any]] | None = None
    repeats: int | None = Field(default=None, ge=1)
    cell_timeout_s: float | None = Field(default=None, gt=0)
    report: ReportSpec | None = None


class StudySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    reported: str = ""  # what the original study reported, to compare against
    out: str | None = None  # default studies-out/<name>
    base: dict[str, Any] = Field(default_factory=dict)  # a partial RunSpec
    matrix: dict[str, Any] = Field(default_factory=dict)
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    # cells to record as skipped, not run: {axis: level, ..., reason: "why"}
    skip: list[dict[str, Any]] = Field(default_factory=list)
    repeats: int = Field(default=1, ge=1)  # each cell run this many times (identical spec)
    cell_timeout_s: float | None = Field(default=None, gt=0)  # wall-clock limit of one cell
    report: ReportSpec = Field(default_factory=ReportSpec)
    profiles: dict[str, ProfileSpec] = Field(default_factory=dict)


# --------------------------------------------------------------------------- run field paths


def _model_class(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _is_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_mapping(a) for a in typing.get_args(annotation))
    return origin is dict or annotation is dict


def run_field_paths(model: type[BaseModel] = RunSpec, prefix: str = "") -> dict[str, str]:
    """Every field of a run spec by dotted path: section, leaf, or mapping (free keys below)."""
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        sub = _model_class(info.annotation)
        if sub is not None:
            out[path] = SECTION
            out.update(run_field_paths(sub, f"{path}."))
        else:
            out[path] = MAPPING if _is_mapping(info.annotation) else LEAF
    return out


def resolve_path(key: str, fields: dict[str, str] | None = None) -> str | None:
    """The run field an axis key names (full path, a path below a mapping field, or a
    leaf name only one field has); None when the key names no field (its own axis)."""
    fields = fields or run_field_paths()
    if key in fields:
        return key
    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        if fields.get(".".join(parts[:i])) == MAPPING:
            return key
    if "." in key:
        return None
    matches = [p for p, kind in fields.items() if kind != SECTION and p.rsplit(".", 1)[-1] == key]
    if len(matches) > 1:
        raise ValueError(f"names several fields ({', '.join(matches)}); write the full path")
    return matches[0] if matches else None


# --------------------------------------------------------------------------- loading


class SpecError(Exception):
    """A bad field: its dotted path in the file and what is wrong (one line)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def deep_merge(base: Any, over: Any) -> Any:
    """``over`` merged into ``base``: mappings key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base.get(k), v) if k in base else v
        return out
    return over


def apply_profile(data: dict[str, Any], name: str, source: str) -> dict[str, Any]:
    """The raw study mapping rewritten by its profile ``name`` (validated on the way)."""
    profiles = data.get("profiles") or {}
    if not isinstance(profiles, dict) or name not in profiles:
        known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) and profiles else "none"
        raise UsageError(f"{source}: profiles.{name}: no such profile; defined: {known}")
    try:
        prof = ProfileSpec.model_validate(profiles[name])
    except ValidationError as err:
        raise UsageError(f"{source}: {spec_error_line(err, f'profiles.{name}.')}") from None
    out = dict(data)
    out["base"] = deep_merge(data.get("base") or {}, prof.base)
    matrix = dict(data.get("matrix") or {})
    for axis, levels in prof.matrix.items():
        if levels is None:
            matrix.pop(axis, None)
        else:
            matrix[axis] = levels
    out["matrix"] = matrix
    for key in ("exclude", "skip", "repeats", "cell_timeout_s"):
        value = getattr(prof, key)
        if value is not None:
            out[key] = value
    if prof.report is not None:
        out["report"] = prof.report.model_dump()
    if prof.description:
        out["description"] = f"{data.get('description', '')}\n[profile {name}] {prof.description}"
    return out


def load_study(path: str | Path, profile: str | None = None) -> tuple[StudySpec, str]:
    """Read, rewrite by ``profile`` and check a study file. Returns the spec and the
    label used in error messages (the path, plus the profile when one is applied)."""
    source = str(path)
    data = load_yaml(path)
    if profile is not None:
        data = apply_profile(data, profile, source)
        source = f"{path} (profile {profile})"
    return parse_study(data, source), source


def parse_study(data: dict[str, Any], source: str = "study") -> StudySpec:
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as err:
        raise UsageError(f"{source}: {spec_error_line(err)}") from None
    try:
        check_study(spec)
    except SpecError as err:
        raise UsageError(f"{source}: {err}") from None
    return spec


# --------------------------------------------------------------------------- semantic checks


def level_items(axis: str, levels: Any) -> list[tuple[str, Any]]:
    """An axis's levels as (label, value) pairs, in order. Labels name the levels in cell
    ids, exclude/skip rules and the report."""
    where = f"matrix.{axis}"
    if levels is None:
        raise SpecError(where, "axis is empty; give at least one value")
    if isinstance(levels, dict):
        if not levels:
            raise SpecError(where, "axis is empty; give at least one value")
        # YAML reads unquoted on/off/yes/no keys as booleans: label them true/false
        return [(k if isinstance(k, str) else scalar_label(k), v) for k, v in levels.items()]
    if not isinstance(levels, list):
        raise SpecError(where, "an axis is a list of values or a mapping of level names "
                               f"to values (got {type(levels).__name__})")
    if not levels:
        raise SpecError(where, "axis is empty; give at least one value")
    items = []
    for i, value in enumerate(levels):
        if isinstance(value, dict):
            name = value.get("name")
            if not isinstance(name, str):
                raise SpecError(f"{where}.{i}", "a mapping level needs a name; write the axis "
                                                "as a mapping {level-name: {...}}")
            items.append((name, value))
        elif isinstance(value, list):
            raise SpecError(f"{where}.{i}", "a list level needs a name; write the axis as a "
                                            "mapping {level-name: [...]}")
        else:
            items.append((scalar_label(value), value))
    return items


def scalar_label(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_study(spec: StudySpec) -> None:
    """What the pydantic schema cannot check; raises SpecError naming the bad field."""
    if not _NAME.match(spec.name):
        raise SpecError("name", "use letters, digits, '.', '_' or '-' (it names the output folder)")
    if not isinstance(spec.base, dict):
        raise SpecError("base", "must be a mapping (a partial run spec)")
    fields = run_field_paths()
    labels: dict[str, list[str]] = {}
    for axis, levels in spec.matrix.items():
        try:
            path = resolve_path(axis, fields)
        except ValueError as err:
            raise SpecError(f"matrix.{axis}", str(err)) from None
        items = level_items(axis, levels)
        names = [label for label, _ in items]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise SpecError(f"matrix.{axis}", f"level {dup!r} appears twice; name the levels")
        if path is None:
            for label, value in items:
                if not isinstance(value, dict):
                    raise SpecError(
                        f"matrix.{axis}",
                        "is not a run field; an axis with a name of its own maps level names to "
                        "partial run specs (e.g. {llm: {engine: {model: ...}}})"
                        if label == names[0] else f"level {label!r} must be a partial run spec",
                    )
        elif fields.get(path) == SECTION:
            for label, value in items:
                if not isinstance(value, dict):
                    raise SpecError(f"matrix.{axis}.{label}",
                                    f"{path} is a section; its levels are mappings of its fields")
        labels[axis] = names
    for key in ("exclude", "skip"):
        for i, rule in enumerate(getattr(spec, key)):
            _check_rule(f"{key}.{i}", rule, labels, with_reason=key == "skip")
    if spec.report.compare is not None:
        for i, axis in enumerate(spec.report.compare):
            if axis not in labels:
                raise SpecError(f"report.compare.{i}", f"{axis!r} is not an axis of the matrix")
    if spec.report.analyses is not None:
        from reasonperf.analysis.registry_all import ANALYSES

        for i, name in enumerate(spec.report.analyses):
            if name not in ANALYSES:
                raise SpecError(f"report.analyses.{i}", f"unknown analysis {name!r}; choose from "
                                                        f"{', '.join(ANALYSES.names())}")


def _check_rule(where: str, rule: dict[str, Any], labels: dict[str, list[str]],
                with_reason: bool) -> None:
    keys = [k for k in rule if not (with_reason and k == REASON_KEY)]
    if with_reason and not isinstance(rule.get(REASON_KEY), str):
        raise SpecError(f"{where}.{REASON_KEY}", "give the reason the cells are skipped")
    if not keys:
        raise SpecError(where, "name at least one axis and its level(s)")
    for key in keys:
        if key not in labels:
            known = ", ".join(labels) or "none"
            raise SpecError(f"{where}.{key}", f"not an axis of the matrix (axes: {known})")
        wanted = rule[key] if isinstance(rule[key], list) else [rule[key]]
        for value in wanted:
            if rule_label(value) not in labels[key]:
                raise SpecError(f"{where}.{key}", f"no level {rule_label(value)!r} on this axis "
                                                  f"(levels: {', '.join(labels[key])})")


def rule_label(value: Any) -> str:
    """A rule names a level by its label; scalar values are written as their label."""
    return value if isinstance(value, str) else scalar_label(value)
