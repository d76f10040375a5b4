"""/readyz answers 503 while the journal's disk is full, and 200 again once there is room.

The full disk is real: the SQLite journal sits on a small tmpfs that the test fills with
a file (a small write may still fit in the database's free pages: readiness counts a
journal file system with under 1 MiB free as full). Where mounting is not permitted the
same scenario runs with triggers that abort every write of the readiness check's row
(what the engine sees then is a failing write, as with a full disk).

SQLite only (``sqlite_only``): the journal's own file system, and its file."""

from __future__ import annotations

from pathlib import Path

import pytest

from standins.mllp import MllpPeer
from tests._full_disk import FullDisk
from tests._readyz import readyz
from tests.engine_harness import EngineThread, write_routes

pytestmark = [pytest.mark.fault, pytest.mark.sqlite_only]

METRICS = "\nmetrics:\n  bind: 127.0.0.1:0\n  ready_timeout: 5s\n"


@pytest.mark.parametrize("mode", ["tmpfs", "trigger"])
def test_readyz_503_while_the_journal_disk_is_full(tmp_path: Path, mode: str) -> None:
    disk = FullDisk(tmp_path, mode, "eai_meta", ("INSERT", "UPDATE"))
    try:
        with MllpPeer() as sink:
            path = write_routes(tmp_path, sink.port, f"sqlite:///{disk.db}", extra=METRICS)
            with EngineThread(path) as eng:
                assert eng.engine.metrics is not None
                port = eng.engine.metrics.port
                assert readyz(port)[0] == 200
                disk.fill()
                status, detail = readyz(port)
                assert status == 503, detail
                journal = detail["checks"]["journal"]  # type: ignore[index]
                assert journal["ok"] is False
                why = "no space left" if disk.mode == "tmpfs" else "database or disk is full"
                assert why in journal["error"], journal
                assert detail["checks"]["event_loop"]["ok"] is True  # type: ignore[index]
                disk.free()
                status, detail = readyz(port)
                assert status == 200, detail
    finally:
        disk.close()
