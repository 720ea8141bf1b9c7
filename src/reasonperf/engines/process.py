"""Subprocess lifecycle for launched engines: ports, process groups, health waits, log tails.

An engine server forks workers of its own (vLLM: an engine-core process; SGLang: schedulers),
so a launched engine is started as the leader of a new session and stopped by signalling
the whole process group, then any stray descendant by pid. ``stop`` is registered with
``atexit`` and SIGTERM is turned into ``SystemExit`` so that neither a normal exit, an
uncaught exception, Ctrl-C nor a polite kill of the parent leaves an orphan server behind.

Against a SIGKILL of the parent (where no Python code of ours runs any more) the server
gets a death signal, and every launch leaves a pid file while it runs: see lifeline.py.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from reasonperf.engines.lifeline import (
    can_die_with_parent,
    engine_pid_dir,
    pid_alive,
    with_death_signal,
    write_pid_file,
)
from reasonperf.redact import redact_args

try:  # a dependency of every engine we launch; only used to find stray descendants
    import psutil
except ImportError:  # pragma: no cover - psutil ships with vLLM and SGLang
    psutil = None

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CARETS = re.compile(r"[\^~ ]+")  # traceback underlines carry no information


def pick_free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the OS picks it; another process may still race us)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """True when (host, port) can be bound the way a server binds it (SO_REUSEADDR set).

    SO_REUSEADDR ignores sockets left in TIME_WAIT by a server we just stopped, but not a
    live listener, which is what we want to detect.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def log_tail(path: Path, n_lines: int = 15, max_bytes: int = 64_000) -> list[str]:
    """The last non-empty lines of a log file, ANSI colours and progress bars stripped."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = []
    for raw in re.split(r"[\r\n]+", data):
        line = _ANSI.sub("", raw).strip()
        if line and not _CARETS.fullmatch(line):
            lines.append(line)
    return lines[-n_lines:]


def one_line(lines: Sequence[str], max_chars: int = 3000) -> str:
    """Lines joined into one line with " | ", cut from the left to max_chars."""
    text = " | ".join(line.replace("\t", " ") for line in lines)
    if len(text) > max_chars:
        text = "..." + text[-max_chars:]
    return text


def http_status(url: str, timeout_s: float = 2.0, headers: dict[str, str] | None = None) -> int:
    """GET url and return its HTTP status; raises OSError (URLError) when nothing answers."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def http_post(url: str, timeout_s: float = 10.0) -> tuple[int, str]:
    """POST an empty body to url: (HTTP status, body text). Raises OSError when nothing answers."""
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as resp:
            return int(resp.status), resp.read(4096).decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(4096).decode("utf-8", errors="replace")


def _sigterm_to_exit(signum: int, frame: object) -> None:
    """SIGTERM -> SystemExit, so context managers and atexit hooks stop the servers."""
    raise SystemExit(128 + signum)


def _install_sigterm_handler() -> None:
    # Only the main thread may set handlers, and a handler the application installed wins.
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _sigterm_to_exit)


class ManagedProcess:
    """A server subprocess in its own process group, with its output in a log file.

    ``die_with_parent``: the server gets SIGTERM when this process dies (Linux, launched
    from the main thread); ``pid_dir``: where its pid file goes (None: engine_pid_dir()).
    """

    def __init__(self, command: Sequence[str], env: dict[str, str], log_path: Path,
                 pid_dir: Path | None = None, die_with_parent: bool = True) -> None:
        self.command = list(command)
        self.env = env
        self.log_path = log_path
        self.pid_dir = engine_pid_dir() if pid_dir is None else pid_dir
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid_file: Path | None = None
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"# reasonperf launch: {' '.join(redact_args(self.command))}\n".encode())
            log.flush()
            guarded = self.die_with_parent and can_die_with_parent()
            self.proc = subprocess.Popen(
                with_death_signal(self.command) if guarded else self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        atexit.register(self.stop)
        _install_sigterm_handler()
        try:
            self.pid_file = write_pid_file(self.pid_dir, self.proc.pid, self.command,
                                           self.log_path)
        except OSError:
            self.pid_file = None  # a read-only home: no stale-engine report, nothing else lost

    def exit_code(self) -> int | None:
        """None while running, else the exit status."""
        return None if self.proc is None else self.proc.poll()

    def descendants(self) -> list[int]:
        """pids of the server and every process it started (empty once all are gone)."""
        if self.proc is None or psutil is None:
            return []
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        return [p.pid for p in procs if _alive(p.pid)]

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the group, wait up to grace_s, then SIGKILL whatever is left. Idempotent."""
        if self.proc is None or self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        pgid = self.proc.pid  # session leader: its pid is the group id
        stray = self.descendants()  # children may leave the group; remember them by pid
        _signal_group(pgid, signal.SIGTERM)
        _signal_pids(stray, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        _wait_until(lambda: not _group_alive(pgid, stray), deadline)
        if _group_alive(pgid, stray):
            _signal_group(pgid, signal.SIGKILL)
            _signal_pids(stray, signal.SIGKILL)
            self.proc.wait()
            _wait_until(lambda: not _group_alive(pgid, stray), time.monotonic() + 5.0)
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """True for a live process; zombies (exited, not yet reaped) count as gone."""
    if psutil is not None:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
    return pid_alive(pid)


def _group_alive(pgid: int, pids: Sequence[int]) -> bool:
    if any(_alive(pid) for pid in pids):
        return True
    if psutil is not None:
        for proc in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(proc.pid) == pgid and _alive(proc.pid):
                    return True
            except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
                continue
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_pids(pids: Sequence[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_until(cond: Callable[[], bool], deadline: float, poll_s: float = 0.1) -> bool:
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
