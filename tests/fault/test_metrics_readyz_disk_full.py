"""/readyz answers 503 while the journal's disk is full, and 200 again once there is room.

The full disk is real: the SQLite journal sits on a small tmpfs that the test fills with
a file (a small write may still fit in the database's free pages: readiness counts a
journal file system with under 1 MiB free as full). Where mounting is not permitted the
same scenario runs with triggers that abort every write of the readiness check's row
(what the engine sees then is a failing write, as with a full disk).

SQLite only (``sqlite_only``): the journal's own file system, and its file."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from standins.mllp import MllpPeer
from tests.engine_harness import EngineThread, write_routes

pytestmark = [pytest.mark.fault, pytest.mark.sqlite_only]

METRICS = "\nmetrics:\n  bind: 127.0.0.1:0\n  ready_timeout: 5s\n"


def _readyz(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


class _Disk:
    """A journal directory that can be made full and given room again."""

    def __init__(self, tmp: Path, mode: str) -> None:
        self.dir = tmp / "fs"
        self.dir.mkdir()
        self.mode = mode
        if mode == "tmpfs":
            done = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(self.dir)],
                capture_output=True,
                check=False,
            )
            if done.returncode != 0:
                self.mode = "trigger"
        self.db = self.dir / "eai.db"
        self.filler = self.dir / "filler"

    def fill(self) -> None:
        if self.mode == "trigger":
            with contextlib.closing(sqlite3.connect(self.db, isolation_level=None)) as c:
                for op in ("INSERT", "UPDATE"):
                    c.execute(
                        f"CREATE TRIGGER eai_test_full_{op.lower()} BEFORE {op} ON eai_meta "
                        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
                    )
            return
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

    def free(self) -> None:
        if self.mode == "trigger":
            with contextlib.closing(sqlite3.connect(self.db, isolation_level=None)) as c:
                c.execute("DROP TRIGGER eai_test_full_insert")
                c.execute("DROP TRIGGER eai_test_full_update")
        else:
            self.filler.unlink()

    def close(self) -> None:
        if self.mode == "tmpfs":
            subprocess.run(["umount", "-l", str(self.dir)], capture_output=True, check=False)


@pytest.mark.parametrize("mode", ["tmpfs", "trigger"])
def test_readyz_503_while_the_journal_disk_is_full(tmp_path: Path, mode: str) -> None:
    disk = _Disk(tmp_path, mode)
    try:
        with MllpPeer() as sink:
            path = write_routes(tmp_path, sink.port, f"sqlite:///{disk.db}", extra=METRICS)
            with EngineThread(path) as eng:
                assert eng.engine.metrics is not None
                port = eng.engine.metrics.port
                assert _readyz(port)[0] == 200
                disk.fill()
                status, detail = _readyz(port)
                assert status == 503, detail
                journal = detail["checks"]["journal"]  # type: ignore[index]
                assert journal["ok"] is False
                why = "no space left" if disk.mode == "tmpfs" else "database or disk is full"
                assert why in journal["error"], journal
                assert detail["checks"]["event_loop"]["ok"] is True  # type: ignore[index]
                disk.free()
                status, detail = _readyz(port)
                assert status == 200, detail
    finally:
        disk.close()
