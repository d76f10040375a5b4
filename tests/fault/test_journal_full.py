"""A journal that cannot be written (full disk, failing write, lock held) is answered AE, never AA.

The listener acknowledges only after the commit (HL7 v2.5 section 2.9: AE
"application error"): when the commit fails, the sender gets AE with an ERR
segment and MSA-2 = its MSH-10, so it keeps the message and sends it again later.
The listener keeps serving, and once the journal is writable again the same
message (same MSH-10) gets AA and is delivered.

The full disk is real: the SQLite database sits on a small tmpfs that the test
fills with a file. Where mounting is not permitted the same scenario runs with a
trigger that aborts every insert into ``messages`` (what the engine sees then is
a failing write, as with a full disk).

SQLite only (``sqlite_only``): its file on a full disk, its file locked.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from standins.mllp import MllpPeer
from tests._full_disk import FullDisk
from tests._mllp import MllpSender, msa, segments
from tests._proc import EaiProcess, by_control_id, fixed_routes, journal, listener_port
from tests.engine_harness import adt

pytestmark = [pytest.mark.fault, pytest.mark.sqlite_only]

BUSY_TIMEOUT = 10.0  # eai/store/_db.py: PRAGMA busy_timeout=10000, sqlite3 timeout=10


def _assert_ae(ack: bytes, cid: str) -> None:
    code, acked = msa(ack)
    assert (code, acked) == ("AE", cid), ack
    err = segments(ack).get("ERR")
    assert err is not None, f"AE without ERR: {ack!r}"
    assert err[3].startswith("207^"), err  # HL7 table 0357: application internal error


@contextlib.contextmanager
def _engine(tmp: Path, sink: MllpPeer, database: str | None = None) -> Iterator[EaiProcess]:
    port = listener_port()
    path = fixed_routes(tmp, port, sink.port, database=database)
    eng = EaiProcess(path, port, tmp / "eai.stderr")
    try:
        yield eng.start()
    finally:
        eng.close()


@pytest.mark.parametrize("mode", ["tmpfs", "trigger"])
def test_full_journal_answers_ae_keeps_serving_then_recovers(tmp_path, mode):
    full = FullDisk(tmp_path, mode, "messages", ("INSERT",))
    try:
        with MllpPeer() as sink, _engine(tmp_path, sink, f"sqlite:///{full.db}") as eng:
            with MllpSender(eng.port) as s:
                for cid in ("F0", "F1"):
                    assert msa(s.exchange(adt(cid, "FULL-1"))) == ("AA", cid)
                assert sink.wait_for(lambda p: p.control_ids() == ["F0", "F1"], 10)

                full.fill()
                # The same connection is served message after message: each gets AE.
                for cid in ("F2", "F3", "F4"):
                    _assert_ae(s.exchange(adt(cid, "FULL-1"), timeout=30), cid)
            with MllpSender(eng.port) as s2:  # and new connections are accepted
                _assert_ae(s2.exchange(adt("F5", "FULL-2"), timeout=30), "F5")

                full.free()
                # The sender sends its refused messages again, same MSH-10: now AA.
                for cid in ("F2", "F3", "F4"):
                    assert msa(s2.exchange(adt(cid, "FULL-1"), timeout=30)) == ("AA", cid)
                assert msa(s2.exchange(adt("F5", "FULL-2"), timeout=30)) == ("AA", "F5")
            want = ["F0", "F1", "F2", "F3", "F4", "F5"]
            assert sink.wait_for(lambda p: sorted(set(p.control_ids())) == want, 60)
            rc, _ = eng.terminate()
            stderr = eng.stderr()
        got = sink.control_ids()
        rows = by_control_id(journal(eng.config))  # before the tmpfs goes away
    finally:
        full.close()
    assert rc == 0, stderr[-2000:]
    # At-least-once: a delivery whose outcome could not be recorded (the disk filled
    # right after it was sent) is sent again. Nothing is lost, and first arrivals keep
    # the order per patient (F5 is another patient's: it may pass F4).
    first = list(dict.fromkeys(got))
    assert sorted(first) == ["F0", "F1", "F2", "F3", "F4", "F5"], got
    assert [c for c in first if c != "F5"] == ["F0", "F1", "F2", "F3", "F4"], got
    # only F0/F1 were in flight when the disk filled: only they may come twice
    assert {c for c in got if got.count(c) > 1} <= {"F0", "F1"}, got
    assert "journal unavailable, answering AE" in stderr
    assert sorted(rows) == ["F0", "F1", "F2", "F3", "F4", "F5"]
    assert all(r["deliveries"][0]["status"] == "delivered" for r in rows.values())
    print(f"\njournal full ({full.mode}): AE x4, then AA and delivered")


def test_locked_journal_answers_ae_after_busy_timeout(tmp_path):
    """Another process holds the write lock past the busy timeout: AE, then AA once released.

    Slow on purpose: the engine waits its whole busy timeout (10 s, not configurable)
    before giving up on the commit.
    """
    with MllpPeer() as sink, _engine(tmp_path, sink) as eng:
        db = tmp_path / "var" / "eai.db"
        with MllpSender(eng.port, timeout=40) as s:
            assert msa(s.exchange(adt("L0", "LOCK-1"))) == ("AA", "L0")
            assert sink.wait_for(lambda p: p.control_ids() == ["L0"], 10)
            time.sleep(0.6)  # let the pipeline and delivery rounds go idle

            with contextlib.closing(sqlite3.connect(db, isolation_level=None)) as locker:
                locker.execute("BEGIN EXCLUSIVE")
                try:
                    t0 = time.monotonic()
                    ack = s.exchange(adt("L1", "LOCK-1"), timeout=40)
                    waited = time.monotonic() - t0
                finally:
                    locker.execute("ROLLBACK")
            _assert_ae(ack, "L1")
            # Not before the busy timeout; at most two of them (a grouped commit that
            # fails is retried write by write).
            assert BUSY_TIMEOUT - 0.5 <= waited <= 2 * BUSY_TIMEOUT + 3, waited

            assert msa(s.exchange(adt("L1", "LOCK-1"))) == ("AA", "L1")
            assert msa(s.exchange(adt("L2", "LOCK-1"))) == ("AA", "L2")
        assert sink.wait_for(lambda p: p.control_ids() == ["L0", "L1", "L2"], 15)
        rc, _ = eng.terminate()
    assert rc == 0
    rows = by_control_id(journal(eng.config))
    assert sorted(rows) == ["L0", "L1", "L2"]
    print(f"\nlocked journal: AE after {waited:.1f} s")
