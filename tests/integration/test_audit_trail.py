"""Every access to health data leaves an audit record, committed before the bytes leave.

The engine runs in a thread; the support commands run as other processes (``eai ...``),
as a support engineer would run them.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hl7.client import MLLPClient
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from eai import audit
from eai.store import AuditEntry, Cipher, Store, append_audit, list_audit, read_raw, utcnow
from standins.mllp import MllpPeer
from tests._journal_db import engine_journal_url, journal_db, refuse_inserts
from tests.engine_harness import EngineThread, adt, write_routes

pytestmark = pytest.mark.integration

EAI = [sys.executable, "-c", "from eai.cli import main; main()"]
ME = pwd.getpwuid(os.getuid()).pw_name
SECRET = "PAT-AUDIT-NAME"


def _message(control_id: str, patient: str = "000003") -> bytes:
    text = adt(control_id, patient).decode()
    segs = text.split("\r")
    for i, seg in enumerate(segs):
        if seg.startswith("PID"):
            f = seg.split("|")
            f[5] = f"{SECRET}^JEAN"
            segs[i] = "|".join(f)
    return "\r".join(segs).encode()


def _eai(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAI_")}
    env.update(USER="nobody", LOGNAME="nobody")  # the record must not believe these
    return subprocess.run(
        [*EAI, *args, "-c", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=path.parent,
        timeout=120,
        check=False,
    )


def _audit(path: Path, *args: str) -> list[dict[str, Any]]:
    res = _eai(path, "audit", "list", "--json", *args)
    assert res.returncode == 0, res.stderr
    rows: list[dict[str, Any]] = json.loads(res.stdout)
    return rows


def _db(path: Path) -> str:
    return engine_journal_url(path)


def test_support_actions_are_recorded_by_the_kernel_user(tmp_path: Path) -> None:
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port)
        with EngineThread(path) as eng:
            with MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
                assert b"MSA|AA" in c.send_message(_message("AUD-1"))
            assert sink.wait_for(lambda s: len(s.received) == 1, 10)
            raw = _eai(path, "messages", "show", "1", "--raw", "--reason", "ticket 7")
            assert raw.returncode == 0 and SECRET in raw.stdout, raw.stderr
            for args in (
                ("queue", "pause", "dcc"),
                ("queue", "resume", "dcc"),
                ("replay", "1", "--yes"),
                ("resend", "1"),
                ("reload",),
            ):
                res = _eai(path, *args)
                assert res.returncode == 0, (args, res.stderr)
            good = path.read_text()
            path.write_text(good + "  - name: bad\n    from: [chu-x-adt]\n    to: [nowhere]\n")
            refused = _eai(path, "reload")
            assert refused.returncode == 1 and "nowhere" in refused.stderr
            path.write_text(good)
        rows = _audit(path)
    by_action = {r["action"]: r for r in rows}
    assert set(by_action) == {
        "read-raw",
        "pause",
        "resume",
        "replay",
        "resend",
        "config-reload",
    }
    read = by_action["read-raw"]
    assert read["actor"]["name"] == ME and read["actor"]["via"] == "admin-socket"
    assert read["actor"]["peer"].startswith(f"uid {os.getuid()}, pid ")
    assert read["message_id"] == 1 and "ticket 7" in read["detail"]
    # the patient is there as keyed hashes only (never the identifier in clear)
    assert read["patient"] and "000003" not in read["patient"]
    assert len(read["patient"].split()[0]) == 40
    assert by_action["replay"]["message_id"] == 1 and by_action["replay"]["patient"]
    assert by_action["resend"]["target"] == "delivery 1"
    assert by_action["pause"]["target"] == "destination dcc"
    reloads = [r for r in rows if r["action"] == "config-reload"]
    assert [r["outcome"] for r in reloads] == ["failure", "success"]  # newest first
    assert all(r["actor"]["name"] == ME for r in reloads)
    assert "nowhere" in reloads[0]["detail"]
    for r in rows:
        assert r["actor"]["name"] == ME, r
        assert "nobody" not in json.dumps(r)
        assert SECRET not in json.dumps(r)
    assert [r["seq"] for r in rows] == list(range(len(rows), 0, -1))
    verify = _eai(path, "audit", "verify")
    assert verify.returncode == 0 and f"ok: {len(rows)} record(s)" in verify.stdout


def test_the_record_is_committed_before_the_payload_is_decrypted(tmp_path: Path) -> None:
    """At the moment the payload is decrypted, another connection already sees the
    read's audit record: it was committed first."""
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port)
        with EngineThread(path) as eng, MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
            assert b"MSA|AA" in c.send_message(_message("AUD-2"))
    store = Store(_db(path), path.parent / "var")
    seen: list[list[tuple[str, int]]] = []

    class Watching:
        """The store's cipher, looking from another connection when asked to open."""

        def __init__(self, cipher: Cipher) -> None:
            self._cipher = cipher

        def audit_mac(self, data: bytes) -> str:
            return self._cipher.audit_mac(data)

        def open(self, sealed: bytes) -> bytes:
            with journal_db(path) as other:
                rows = other.execute(text("SELECT action, message_id FROM audit_log")).all()
            seen.append(rows)
            return self._cipher.open(sealed)

    try:
        payload = read_raw(
            store.engine,
            Watching(store.cipher),
            1,
            reader="tester",
            via="by a test",  # type: ignore[arg-type]
        )
    finally:
        store.engine.dispose()
    assert SECRET.encode() in payload
    assert seen == [[("read-raw", 1)]]


def test_no_payload_when_the_record_cannot_be_written(tmp_path: Path) -> None:
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port)
        with EngineThread(path) as eng:
            with MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
                assert b"MSA|AA" in c.send_message(_message("AUD-3"))
            with journal_db(path) as conn:
                refuse_inserts(conn, "audit_log", "audit disk full")
            res = _eai(path, "messages", "show", "1", "--raw")
            assert res.returncode != 0
            assert SECRET not in res.stdout + res.stderr
            assert "could not be recorded" in res.stderr
    # the store-level function refuses the same way, with nothing decrypted
    store = Store(_db(path), path.parent / "var")
    try:
        with pytest.raises(IntegrityError, match="audit disk full"):
            read_raw(store.engine, store.cipher, 1, reader="tester", via="by a test")
        with journal_db(path) as conn:
            assert conn.execute(
                text("SELECT count(*) FROM events WHERE kind='raw_viewed'")
            ).one() == (0,)
    finally:
        store.engine.dispose()


def test_the_engine_purges_past_retention_and_the_chain_still_verifies(tmp_path: Path) -> None:
    with MllpPeer() as sink:
        path = write_routes(
            tmp_path, sink.port, extra="audit:\n  retention: 1d\n  purge_every: 200ms\n"
        )
        store = Store(_db(path), path.parent / "var")
        try:
            old = utcnow() - timedelta(days=10)
            for i, at in enumerate((old, old, utcnow())):
                with store.engine.begin() as conn:
                    entry = AuditEntry("login", detail=f"n{i}")
                    append_audit(conn, store.cipher, audit.account("zoe"), entry, at)
            with EngineThread(path):
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not list_audit(store.engine, action="purge"):
                    time.sleep(0.1)
            rows = list_audit(store.engine, limit=None)
        finally:
            store.engine.dispose()
    assert [(r.seq, r.entry.action) for r in rows] == [(4, "purge"), (3, "login")]
    assert rows[0].actor.kind == "engine" and "2 record(s)" in rows[0].entry.detail
    verify = _eai(path, "audit", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "ok: 2 record(s) chained (records 3 to 4)" in verify.stdout
