"""One process per run directory (or study output folder): an exclusive ``flock``.

Two ``--resume`` processes on one run would each send every missing request. The lock is
an ``fcntl.flock`` on ``<dir>/.lock``, which holds the holder's pid for the message the
second process prints. The kernel drops a flock when its holder's file descriptor closes,
so a crashed or SIGKILLed holder leaves no stale lock behind; the descriptor is not
inheritable, so a launched engine (a child process) never keeps it alive. The file itself
is never deleted: unlinking a lock file lets two processes lock two different inodes.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from reasonperf.errors import UsageError

LOCK_FILE = ".lock"


class DirLock:
    """``with DirLock(path, "run directory"):`` or ``acquire()`` / ``release()``."""

    def __init__(self, directory: str | Path, what: str) -> None:
        self.dir = Path(directory)
        self.what = what
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.dir / LOCK_FILE

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> DirLock:
        """Lock, or raise UsageError naming the holder's pid (exit code 2)."""
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise UsageError(
                f"{self.dir} is in use by another reasonperf process (pid {holder}); "
                f"wait for it to end or stop it, then run again"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
