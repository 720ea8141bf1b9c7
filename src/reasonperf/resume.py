"""What a resume may trust: the input files a run was started from, what it will send,
and where its arrival process continues.

A run stores its input files (the workload table, a data file, a prompt template, a trace)
by absolute path and sha256, so ``--resume`` works from any working directory and refuses
a file that changed: the same request ids would otherwise name other prompts.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

from reasonperf.config import RunSpec
from reasonperf.engines.spec import EngineSpec
from reasonperf.errors import UsageError
from reasonperf.redact import MASK
from reasonperf.store import ResumeState
from reasonperf.workload.arrivals import Arrival
from reasonperf.workload.files import is_table_path

REPLAY_PREFIX = "replay:"  # --workload replay:lengths.json names a file after the prefix
# (section, field) of the spec that may name a local file.
_INPUT_FIELDS = (("workload", "name"), ("workload", "data_file"),
                 ("workload", "prompt_template"), ("arrival", "trace_file"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pin_inputs(spec: RunSpec) -> tuple[RunSpec, dict[str, dict[str, str]]]:
    """The spec with its input files made absolute, and {field: {path, sha256}} for them."""
    pinned: dict[str, dict[str, str]] = {}
    for section, name in _INPUT_FIELDS:
        part = getattr(spec, section)
        value = getattr(part, name)
        if not value:
            continue
        prefix = ""
        if (section, name) == ("workload", "name") and value.startswith(REPLAY_PREFIX):
            prefix, value = REPLAY_PREFIX, value[len(REPLAY_PREFIX):]  # its lengths file
        elif (section, name) == ("workload", "name") and not is_table_path(value):
            continue  # a registered workload, not a file
        path = Path(value).expanduser()
        if not path.is_file():
            continue  # the loader says what is wrong with it
        path = path.resolve()
        pinned[f"{section}.{name}"] = {"path": str(path), "sha256": file_sha256(path)}
        spec = spec.model_copy(update={section: part.model_copy(
            update={name: prefix + str(path)})})
    return spec, pinned


def check_inputs(info: dict[str, Any]) -> None:
    """Refuse to resume when an input file of the run is gone or changed."""
    for field, pin in (info.get("inputs") or {}).items():
        path = Path(pin["path"])
        if not path.is_file():
            raise UsageError(
                f"{field}: {path} is gone; this run was started from it, put it back to resume"
            )
        if file_sha256(path) != pin["sha256"]:
            raise UsageError(
                f"{field}: {path} changed since the run started (sha256 differs); resuming "
                "would mix two workloads: restore the file or start a new run"
            )


def check_resumable_engine(engine: EngineSpec) -> None:
    """Refuse to start an engine from a stored spec whose secrets were redacted: it would
    run with ``***`` as its key. Secrets are never stored; the environment gives them."""
    masked = []
    if MASK + "@" in (engine.url or "") + (engine.metrics_url or ""):
        masked.append("credentials in engine.url")
    masked += [f"engine.env.{k}" for k, v in engine.env.items() if MASK in v]
    masked += [a.split("=", 1)[0] for a in engine.extra_args if MASK in a]
    if masked:
        raise UsageError(
            f"this run's engine had secrets ({', '.join(masked)}), which are never stored, so "
            "it cannot be resumed: give keys through the environment (engine.api_key_env, or "
            "variables exported in the shell, e.g. VLLM_API_KEY) and start a new run"
        )


def continue_arrival(arrival: Arrival) -> Arrival:
    """The arrival process resumed at the first request still to send.

    The k-th request to send takes the k-th slot from there (``Arrival.compact``, applied
    by ``workload.plan.schedule`` as the plans stream by), so re-sent errors (spread over
    the whole original run) keep the asked rate instead of replaying their original
    times with long idle gaps before the unsent requests.
    """
    if arrival.mode != "open" or arrival.offsets is None:
        return arrival
    return dataclasses.replace(arrival, compact=True)


def resume_line(state: ResumeState, total: int, to_send: int, retry_errors: bool) -> str:
    """What this resume will do, in one line."""
    finished = total - to_send
    errors = len(state.errored)
    if retry_errors:
        return (f"resume: {finished} finished, {to_send} to send "
                f"({errors} errors being retried)")
    line = f"resume: {finished} finished, {to_send} to send"
    if errors:
        line += f" ({errors} errors kept as finished; --retry-errors re-sends them)"
    return line


def nothing_to_do_line(run_dir: Path, state: ResumeState, total: int,
                       retry_errors: bool) -> str:
    line = f"nothing to do: all {total} requests of {run_dir} are finished"
    if state.errored and not retry_errors:
        line += f" ({len(state.errored)} errors; --retry-errors re-sends them)"
    return line
