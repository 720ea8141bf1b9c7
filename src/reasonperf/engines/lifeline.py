"""A launched server must not outlive the process that launched it, and one that did
must be found.

Against a SIGKILL of the parent (where no Python code of ours runs any more) the server
asks Linux for a death signal (PR_SET_PDEATHSIG) before it execs: it gets SIGTERM when we
die, and shuts down its own workers as on any SIGTERM (vLLM stops its engine core). Every
launch also writes a pid file (``engine_pid_dir()``), removed when it is stopped;
``find_stale_engines`` reports a server whose launching process is gone (killed on a
non-Linux host, or a server that ignored SIGTERM), with the command that stops it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

try:  # ships with every engine we launch; without it pid reuse is checked by cmdline only
    import psutil
except ImportError:  # pragma: no cover
    psutil = None


def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


PID_DIR_ENV = "REASONPERF_PID_DIR"
PR_SET_PDEATHSIG = 1

# Runs in the child before the server: ask for SIGTERM when the parent dies, check that
# the parent did not die before the request took effect, then become the server (exec
# keeps the pid and the death signal).
_DIE_WITH_PARENT = (
    "import ctypes, os, sys\n"
    "if ctypes.CDLL(None, use_errno=True).prctl(1, int(sys.argv[1]), 0, 0, 0) != 0:\n"
    "    sys.exit('reasonperf: prctl(PR_SET_PDEATHSIG) failed')\n"
    "if os.getppid() != int(sys.argv[2]):\n"
    "    sys.exit('reasonperf: the launching process is gone')\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)


def engine_pid_dir() -> Path:
    """Where launched servers' pid files live: $REASONPERF_PID_DIR, else
    ~/.cache/reasonperf/engines."""
    env = os.environ.get(PID_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "reasonperf" / "engines"


def can_die_with_parent() -> bool:
    """PR_SET_PDEATHSIG exists on Linux only, and fires when the *thread* that started the
    child ends: only a launch from the main thread (which lives as long as we do) uses it."""
    return sys.platform.startswith("linux") and (
        threading.current_thread() is threading.main_thread())


def with_death_signal(command: Sequence[str], sig: int = signal.SIGTERM) -> list[str]:
    """command, wrapped so that the server gets sig when this process dies."""
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(int(sig)), str(os.getpid()), *command]


def _process_started(pid: int) -> float | None:
    """The start time of pid (to tell it from a later process with the same pid)."""
    if psutil is None:
        return None
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        if psutil is None:
            return None
        try:
            return list(psutil.Process(pid).cmdline())
        except psutil.Error:
            return None
    return raw.decode(errors="replace").split("\0")[:-1]


@dataclass(frozen=True)
class StaleEngine:
    """A server we launched whose launching process is gone, found from its pid file."""

    pid: int
    command: list[str]
    log_path: str | None
    started: str | None
    parent_pid: int | None

    def describe(self) -> str:
        what = " ".join(self.command[1:4]) if len(self.command) > 1 else " ".join(self.command)
        return (
            f"an engine launched by an earlier reasonperf process (pid {self.parent_pid}, gone) "
            f"is still running: pid {self.pid} ({what} ...), started {self.started}, "
            f"log {self.log_path}; it holds memory and maybe a GPU; stop it with: "
            f"kill -TERM -- -{self.pid}"
        )


def write_pid_file(pid_dir: Path, pid: int, command: Sequence[str], log_path: Path) -> Path:
    pid_dir.mkdir(parents=True, exist_ok=True)
    path = pid_dir / f"{pid}.json"
    record = {
        "pid": pid, "command": list(command), "log_path": str(log_path),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "parent_pid": os.getpid(), "parent_started": _process_started(os.getpid()),
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
    return path


def find_stale_engines(pid_dir: Path | None = None) -> list[StaleEngine]:
    """Servers from our pid files that still run while the process that launched them is
    gone. Pid files of servers that ended (or whose pid now belongs to another program)
    are removed."""
    folder = engine_pid_dir() if pid_dir is None else pid_dir
    stale = []
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            pid, command = int(record["pid"]), list(record["command"])
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            continue
        if not pid_alive(pid) or _cmdline(pid) not in (command, None):
            path.unlink(missing_ok=True)
            continue
        parent = record.get("parent_pid")
        if isinstance(parent, int) and pid_alive(parent) and (
                _process_started(parent) == record.get("parent_started")):
            continue  # its launcher still runs it
        stale.append(StaleEngine(pid, command, record.get("log_path"), record.get("started"),
                                 parent if isinstance(parent, int) else None))
    return stale
