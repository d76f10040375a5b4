"""Audited raw access (issue 16, point 3): the running engine serves payloads over its Unix
admin socket, names the reader as the kernel identifies them, and records before answering."""

from __future__ import annotations

import asyncio
import base64
import grp
import json
import logging
import os
import pwd
import socket
import stat
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hl7.client import MLLPClient
from sqlalchemy import select, text

from eai.admin import AdminServer, break_glass_read
from eai.admin import request as admin_request
from eai.errors import StoreError
from eai.store import Store, set_paused
from eai.store.schema import events
from standins.mllp import MllpPeer
from tests._database import database_url, engine_database
from tests._journal_db import journal_db, refuse_inserts
from tests.engine_harness import EngineThread, adt, write_routes

pytestmark = pytest.mark.integration

EAI = [sys.executable, "-c", "from eai.cli import main; main()"]
SECRET = "PAT-SECRET-NAME"
ME = pwd.getpwuid(os.getuid()).pw_name
#: The journal's own files in the data dir: none when it is on PostgreSQL.
SQLITE_FILES = ("eai.db", "eai.db-wal", "eai.db-shm", "eai.lock")
if engine_database() != "sqlite":
    SQLITE_FILES = ()


def _message(patient: str = "000003") -> bytes:
    """The PAM FR A01 fixture with a recognisable patient name in PID-5."""
    text = adt("RAW-1", patient).decode()
    segs = text.split("\r")
    for i, seg in enumerate(segs):
        if seg.startswith("PID"):
            f = seg.split("|")
            f[5] = f"{SECRET}^JEAN"
            segs[i] = "|".join(f)
    return "\r".join(segs).encode()


def _eai(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``eai ARGS -c PATH`` as another process, with a forged $USER and $LOGNAME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EAI_")}
    env.update(USER="nobody", LOGNAME="nobody")
    return subprocess.run(
        [*EAI, *args, "-c", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=path.parent,
        timeout=60,
        check=False,
    )


def _raw_events(path: Path) -> list[str]:
    with journal_db(path) as conn:
        rows = conn.execute(text("SELECT detail FROM events WHERE kind = 'raw_viewed' ORDER BY id"))
        return [r[0] for r in rows]


def _journal_one(tmp_path: Path, sink: MllpPeer, extra: str = "") -> tuple[Path, EngineThread]:
    path = write_routes(tmp_path, sink.port, extra=extra)
    eng = EngineThread(path).start()
    with MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
        assert b"MSA|AA" in c.send_message(_message())
    return path, eng


def _ask(sock_path: Path, frame: bytes) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(sock_path))
        s.sendall(frame)
        head = b""
        while len(head) < 4:
            chunk = s.recv(4 - len(head))
            assert chunk, "the engine closed without answering"
            head += chunk
        (n,) = struct.unpack(">I", head)
        body = b""
        while len(body) < n:
            chunk = s.recv(n - len(body))
            assert chunk
            body += chunk
    answer = json.loads(body)
    assert isinstance(answer, dict)
    return answer


def _frame(obj: object) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack(">I", len(body)) + body


def test_record_names_the_kernel_user_not_the_environment(tmp_path):
    with MllpPeer() as sink:
        path, eng = _journal_one(tmp_path, sink)
        try:
            proc = subprocess.Popen(
                [*EAI, "messages", "show", "1", "--raw", "--reason", "ticket 42", "-c", str(path)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "USER": "nobody", "LOGNAME": "nobody"},
                cwd=tmp_path,
            )
            out, err = proc.communicate(timeout=60)
        finally:
            eng.stop()
    assert proc.returncode == 0, err
    assert SECRET in out
    [record] = _raw_events(path)
    assert record.startswith(f"payload shown to {ME} (uid {os.getuid()}, pid {proc.pid})")
    assert "admin socket" in record and "reason: ticket 42" in record
    assert "nobody" not in record
    assert "raw_viewed" in out  # the reader sees their own record in the journey


def test_raw_read_without_a_running_engine_is_refused(tmp_path):
    with MllpPeer() as sink:
        path, eng = _journal_one(tmp_path, sink)
        eng.stop()
    res = _eai(path, "messages", "show", "1", "--raw")
    assert res.returncode == 4  # the engine is unavailable
    assert SECRET not in res.stdout + res.stderr
    assert "needs the running engine" in res.stderr
    assert "--break-glass" in res.stderr
    assert "Traceback" not in res.stderr
    assert _raw_events(path) == []
    assert not (tmp_path / "var" / "admin.sock").exists()  # removed when the engine stopped


def test_no_payload_when_the_record_cannot_be_written(tmp_path):
    with MllpPeer() as sink:
        path, eng = _journal_one(tmp_path, sink)
        try:
            with journal_db(path) as conn:
                refuse_inserts(conn, "events", "disk full", when="NEW.kind = 'raw_viewed'")
            res = _eai(path, "messages", "show", "1", "--raw", "--json")
        finally:
            eng.stop()
    assert res.returncode != 0
    assert SECRET not in res.stdout + res.stderr
    assert "could not be recorded" in res.stderr
    assert _raw_events(path) == []


def test_socket_and_data_dir_are_private(tmp_path):
    with MllpPeer() as sink:
        path, eng = _journal_one(tmp_path, sink)
        try:
            var = tmp_path / "var"
            sock = os.stat(var / "admin.sock")
            assert stat.S_ISSOCK(sock.st_mode)
            assert stat.S_IMODE(sock.st_mode) == 0o600
            assert stat.S_IMODE(os.stat(var).st_mode) == 0o700
            for name in (*SQLITE_FILES, "eai.key"):
                assert stat.S_IMODE(os.stat(var / name).st_mode) == 0o600, name
        finally:
            eng.stop()


def test_admin_group_opens_the_socket_to_the_group(tmp_path):
    group = os.getgid()
    name = grp.getgrgid(group).gr_name
    with MllpPeer() as sink:
        short = Path(f"/tmp/eai-admin-{os.getpid()}")  # under the 107-byte sun_path limit
        path = write_routes(tmp_path, sink.port)
        text = path.read_text().replace(
            "engine:\n", f"engine:\n  admin_group: {name}\n  admin_socket: {short}/a.sock\n", 1
        )
        path.write_text(text)
        eng = EngineThread(path).start()
        try:
            st = os.stat(short / "a.sock")
            assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == group
            assert stat.S_IMODE(os.stat(short).st_mode) == 0o710
            assert _ask(short / "a.sock", _frame({"op": "whoami"}))["uid"] == os.getuid()
        finally:
            eng.stop()
            short.rmdir()


def test_bad_requests_get_clear_answers(tmp_path):
    with MllpPeer() as sink:
        path, eng = _journal_one(tmp_path, sink)
        sock = tmp_path / "var" / "admin.sock"
        try:
            me = _ask(sock, _frame({"op": "whoami"}))
            assert me == {
                "ok": True,
                "pid": os.getpid(),
                "uid": os.getuid(),
                "gid": os.getgid(),
                "user": ME,
            }
            cases = {
                b"\x00\x00\x00\x05nope!": "bad_request",
                _frame([1, 2]): "bad_request",
                struct.pack(">I", 10_000_000): "bad_request",
                _frame({"op": "drop_tables"}): "unknown_op",
                _frame({"op": "raw"}): "bad_request",
                _frame({"op": "raw", "message_id": True}): "bad_request",
                _frame({"op": "raw", "message_id": 1, "reason": "x" * 201}): "bad_request",
                _frame({"op": "raw", "message_id": 999}): "not_found",
            }
            for frame, code in cases.items():
                answer = _ask(sock, frame)
                assert answer["ok"] is False and answer["code"] == code, (frame[:20], answer)
                assert answer["error"]
            assert _raw_events(path) == []
            ok = _ask(sock, _frame({"op": "raw", "message_id": 1}))
            assert ok["ok"] is True and ok["message"]["id"] == 1  # type: ignore[index]
        finally:
            eng.stop()


def test_break_glass_as_root_reads_on_record(tmp_path):
    assert os.getuid() == 0, "CI runs the tests as root (the refusal is a unit test)"
    with MllpPeer() as sink:
        path, eng = _journal_one(tmp_path, sink)
        eng.stop()
    res = _eai(path, "messages", "show", "1", "--raw", "--break-glass", "--reason", "outage")
    assert res.returncode == 0, res.stderr
    assert SECRET in res.stdout
    [record] = _raw_events(path)
    assert record.startswith("payload shown to root (uid 0, pid ")
    assert "break-glass" in record and "reason: outage" in record


def test_a_data_dir_too_deep_for_sun_path_still_serves(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    with MllpPeer() as sink:
        path, eng = _journal_one(deep, sink)
        try:
            assert len(os.fsencode(deep / "var" / "admin.sock")) > 107
            res = _eai(path, "messages", "show", "1", "--raw")
        finally:
            eng.stop()
    assert res.returncode == 0, res.stderr
    assert SECRET in res.stdout


def test_a_live_socket_is_not_taken_by_a_second_server(tmp_path):
    with MllpPeer() as sink:
        path, eng = _journal_one(tmp_path, sink)
        try:
            sock = tmp_path / "var" / "admin.sock"
            store = eng.engine.store
            assert store is not None
            with pytest.raises(StoreError, match="another engine answers"):
                asyncio.run(AdminServer(sock, store).start())
            assert _ask(sock, _frame({"op": "whoami"}))["ok"] is True
        finally:
            eng.stop()


NOBODY = pwd.getpwnam("nobody")


def _as_nobody(fn: Callable[[], object]) -> object:
    """``fn()`` in a forked child that became ``nobody`` (uid and gids dropped by the
    kernel, as a support engineer's own login would be); its result or its error's text."""
    assert os.getuid() == 0, "CI runs the tests as root: dropping to nobody needs it"
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            try:
                out: object = {"ok": fn()}
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                out = {"error": f"{type(exc).__name__}: {exc}"}
            os.write(wfd, json.dumps(out, default=str).encode())
        finally:
            os._exit(0)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as r:
        data = r.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def test_another_user_reads_neither_the_key_nor_the_journal_nor_the_socket(tmp_path):
    with MllpPeer() as sink:
        path, eng = _journal_one(tmp_path, sink)
        try:
            var = tmp_path / "var"
            config = eng.config
            attempts = {
                "key": lambda: (var / "eai.key").read_text(),
                **({"journal": lambda: (var / "eai.db").read_bytes()[:16]} if SQLITE_FILES else {}),
                "socket": lambda: admin_request(var / "admin.sock", {"op": "whoami"}),
                "break-glass": lambda: break_glass_read(config, 1, "", None),
            }
            got = {name: _as_nobody(fn) for name, fn in attempts.items()}
        finally:
            eng.stop()
    assert "PermissionError" in got["key"]["error"]  # type: ignore[index]
    if SQLITE_FILES:  # on PostgreSQL the journal is no file of the data dir
        assert "PermissionError" in got["journal"]["error"]  # type: ignore[index]
    assert "permission denied" in got["socket"]["error"]  # type: ignore[index]
    assert "root only" in got["break-glass"]["error"]  # type: ignore[index]
    assert _raw_events(path) == []


def test_a_member_of_admin_group_is_served_and_recorded_by_uid(tmp_path):
    group = grp.getgrgid(NOBODY.pw_gid).gr_name
    short = Path(f"/tmp/eai-grp-{os.getpid()}")
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port)
        text = path.read_text().replace(
            "engine:\n", f"engine:\n  admin_group: {group}\n  admin_socket: {short}/a.sock\n", 1
        )
        path.write_text(text)
        eng = EngineThread(path).start()
        try:
            with MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
                assert b"MSA|AA" in c.send_message(_message())
            sock = short / "a.sock"
            got = _as_nobody(lambda: admin_request(sock, {"op": "raw", "message_id": 1}))
        finally:
            eng.stop()
            short.rmdir()
    answer = got["ok"]  # type: ignore[index]
    assert SECRET in base64.b64decode(answer["payload"]).decode()
    [record] = _raw_events(path)
    assert record.startswith(f"payload shown to nobody (uid {NOBODY.pw_uid}, pid ")


def test_admin_group_with_the_socket_in_data_dir_traverses_it_only(tmp_path, caplog):
    group = NOBODY.pw_gid
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port)
        name = grp.getgrgid(group).gr_name
        path.write_text(path.read_text().replace("engine:\n", f"engine:\n  admin_group: {name}\n"))
        var = tmp_path / "var"
        for _ in range(2):  # a restart keeps the group's traverse bit, without a warning
            with caplog.at_level(logging.WARNING), EngineThread(path):
                st = os.stat(var)
                assert stat.S_IMODE(st.st_mode) == 0o710 and st.st_gid == group
                assert stat.S_IMODE(os.stat(var / "admin.sock").st_mode) == 0o660
                for name in SQLITE_FILES[:1]:
                    assert stat.S_IMODE(os.stat(var / name).st_mode) == 0o600
    assert "open to others" not in caplog.text


def test_pause_record_names_the_real_user_not_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("USER", "nobody")
    monkeypatch.setenv("LOGNAME", "nobody")
    store = Store(database_url(tmp_path / "eai.db"), tmp_path)
    try:
        set_paused(store.engine, "dcc", True, cipher=store.cipher)
        with store.engine.connect() as conn:
            [detail] = conn.execute(select(events.c.detail)).scalars().all()
    finally:
        store.engine.dispose()
    assert detail == f"destination dcc by {ME}"
