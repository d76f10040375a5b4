"""A SQLite journal's directory that a fault test makes full and gives room again.

Touches: files (a 16 MiB tmpfs mounted under the test's tmp_path, or SQLite triggers).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from pathlib import Path


class FullDisk:
    """Sets up ``tmp/fs`` for ``db`` (``fs/eai.db``): ``fill()`` makes it full, ``free()``
    gives room again, ``close()`` unmounts.

    ``mode="tmpfs"`` mounts a 16 MiB tmpfs and fills it with a file; where mounting is
    refused (or ``mode="trigger"``) ``mode`` becomes ``"trigger"`` and ``fill()`` adds
    triggers that abort each ``ops`` on ``table`` with SQLite's full-disk message."""

    def __init__(self, tmp: Path, mode: str, table: str, ops: tuple[str, ...]) -> None:
        self.dir = tmp / "fs"
        self.dir.mkdir()
        self.mode, self.table, self.ops = mode, table, ops
        self.mounted = mode == "tmpfs" and _mount_tmpfs(self.dir, "16m")
        if not self.mounted:
            self.mode = "trigger"
        self.db = self.dir / "eai.db"
        self.filler = self.dir / "filler"

    def fill(self) -> None:
        if self.mode == "trigger":
            with contextlib.closing(sqlite3.connect(self.db, isolation_level=None)) as c:
                for op in self.ops:
                    c.execute(
                        f"CREATE TRIGGER eai_test_full_{op.lower()} BEFORE {op} ON {self.table} "
                        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
                    )
            return
        # Fill it to the last byte, big writes first, then smaller ones (bounded).
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            size, writes = 1 << 20, 0
            while size >= 512 and writes < 10_000:
                writes += 1
                try:
                    os.write(fd, b"\0" * size)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    size //= 2
        finally:
            os.close(fd)
        assert writes < 10_000, "the tmpfs never filled up"

    def free(self) -> None:
        if self.mode == "trigger":
            with contextlib.closing(sqlite3.connect(self.db, isolation_level=None)) as c:
                for op in self.ops:
                    c.execute(f"DROP TRIGGER eai_test_full_{op.lower()}")
        else:
            self.filler.unlink()

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.dir)], capture_output=True, check=False)


def _mount_tmpfs(where: Path, size: str) -> bool:
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    return res.returncode == 0
