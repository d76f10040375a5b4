"""One SQLite journal's write lock across processes: an advisory file lock beside it.

Touches: files (creates ``<journal>-writer.lock``, 0600, beside the SQLite file).

SQLite lets one connection write at a time; another that finds the journal locked
sleeps in its busy handler (1, 2, 5, 10... ms) and tries again, so a commit that waits
behind another process's transaction waits longer than that transaction. When a
listener serves in a process of its own (``own_process``), its writer and the engine's
take this lock around each transaction instead: ``flock`` wakes the waiter as the
holder releases it, and the SQLite lock is then free. The kernel drops the lock of a
process that dies. Writers that do not take it (the console's, the CLI's) still wait in
SQLite's busy handler, as before.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

__all__ = ["WriteLock"]


class WriteLock:
    """``with lock:`` holds ``path`` exclusively (``flock``); one holder per process at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __enter__(self) -> None:
        assert self._fd is not None, "closed"
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
