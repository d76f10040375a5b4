"""Reloading routes.yaml in a running engine: eai reload (admin socket) and SIGHUP."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from hl7.client import MLLPClient
from sqlalchemy import select

from eai.store.schema import events
from standins.mllp import MllpPeer
from tests._journal_db import journal_db
from tests._mllp import msa
from tests._proc import EaiProcess, eai_cli, fixed_routes, listener_port
from tests.engine_harness import EngineThread, adt, write_routes

pytestmark = pytest.mark.integration

POSITION = re.compile(r"routes\.yaml:\d+:\d+: ")


def _second_destination(path: Path, port: int) -> None:
    """Adds destination dcc2 on ``port`` and sends the route there instead of dcc."""
    text = path.read_text()
    text = text.replace(
        "routes:\n",
        "  - name: dcc2\n"
        "    type: mllp\n"
        "    host: 127.0.0.1\n"
        f"    port: {port}\n"
        "    retry: {initial: 0.05s, max: 0.5s}\n"
        "routes:\n",
    )
    text = text.replace("    to: [dcc]\n", "    to: [dcc2]\n")
    path.write_text(text)


def _dcc_moved(path: Path, port: int) -> None:
    """Destination dcc itself now sends to ``port`` (its worker is rebuilt)."""
    text = path.read_text()
    assert text.count("    port: ") == 1
    path.write_text(re.sub(r"    port: \d+\n", f"    port: {port}\n", text))


def _reload(path: Path) -> tuple[int, str, str]:
    """``eai reload -c PATH`` as a subprocess (exit code, stdout, stderr)."""
    res = eai_cli(path, "reload")
    return res.returncode, res.stdout, res.stderr


def _events(path: Path, kind: str) -> list[str]:
    with journal_db(path) as conn:
        rows = conn.execute(
            select(events.c.detail).where(events.c.kind == kind).order_by(events.c.id)
        ).all()
    return [r[0] for r in rows]


@pytest.mark.parametrize(
    ("edit", "said"),
    [(_second_destination, "destinations added: dcc2"), (_dcc_moved, "destinations changed: dcc")],
    ids=["route-to-new-destination", "destination-changed"],
)
def test_route_moved_while_messages_flow_none_lost_or_doubled(tmp_path, edit, said):
    with MllpPeer() as old, MllpPeer() as new:
        path = write_routes(tmp_path, old.port)
        with EngineThread(path) as eng:
            acked: list[str] = []
            reloaded_at: list[int] = []
            errors: list[BaseException] = []

            def feed() -> None:
                """Sends until 30 messages are acknowledged after the reload's answer."""
                try:
                    with MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
                        for i in range(3000):
                            if reloaded_at and len(acked) >= reloaded_at[0] + 30:
                                return
                            cid = f"R{i:04d}"
                            assert msa(c.send_message(adt(cid, f"P{i % 7}")))[0] == "AA"
                            acked.append(cid)
                            time.sleep(0.005)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            sender = threading.Thread(target=feed)
            sender.start()
            deadline = time.monotonic() + 30
            while len(acked) < 25 and time.monotonic() < deadline and sender.is_alive():
                time.sleep(0.01)
            edit(path, new.port)
            code, out, err = _reload(path)
            reloaded_at.append(len(acked))
            sender.join(60)
            assert not errors, errors
            assert code == 0, out + err
            assert said in out
            total = len(acked)
            assert new.wait_for(lambda s: len(s.received) + len(old.received) >= total, 30)
            time.sleep(0.3)  # a duplicate would arrive now
        got_old, got_new = old.control_ids(), new.control_ids()
    assert sorted(got_old + got_new) == sorted(acked)  # each message once, on one side
    after = set(acked[reloaded_at[0] :])
    assert len(after) >= 30 and after <= set(got_new)  # journaled after the answer
    assert got_old, "the messages before the reload went to the old destination"
    (detail,) = _events(path, "config_reloaded")
    assert "through the admin socket" in detail and "uid" in detail and "sha256" in detail


def test_invalid_file_refused_with_positions_old_routes_kept(tmp_path):
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port)
        with EngineThread(path) as eng:
            good = path.read_text()
            path.write_text(good.replace("    to: [dcc]\n", "    to: [nowhere]\n"))
            code, out, err = _reload(path)
            assert code != 0
            assert POSITION.search(err), err
            assert "nowhere" in err
            with MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
                assert msa(c.send_message(adt("AFTER-BAD", "P1")))[0] == "AA"
            assert sink.wait_for(lambda s: "AFTER-BAD" in s.control_ids(), 10)
    (refused,) = _events(path, "config_reload_refused")
    assert POSITION.search(refused)
    assert _events(path, "config_reloaded") == []


def test_restart_only_changes_are_named_and_kept(tmp_path):
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port)
        with EngineThread(path) as eng:
            port = eng.port("chu-x-adt")
            path.write_text(
                path.read_text().replace("bind: 127.0.0.1:0", f"bind: 127.0.0.1:{port + 1}")
            )
            code, out, err = _reload(path)
            assert code == 0, out + err
            assert "listener chu-x-adt changed: kept until the engine restarts" in err
            with MLLPClient("127.0.0.1", port) as c:  # still listening where it was
                assert msa(c.send_message(adt("SAME-PORT", "P1")))[0] == "AA"
            assert sink.wait_for(lambda s: "SAME-PORT" in s.control_ids(), 10)


def test_sighup_applies_the_new_routes(tmp_path):
    port = listener_port()
    with MllpPeer() as old, MllpPeer() as new:
        path = fixed_routes(tmp_path, port, old.port)
        with EaiProcess(path, port, tmp_path / "engine.log").start() as proc:
            with MLLPClient("127.0.0.1", port) as c:
                assert msa(c.send_message(adt("BEFORE", "P1")))[0] == "AA"
            assert old.wait_for(lambda p: "BEFORE" in p.control_ids(), 10)
            _second_destination(path, new.port)
            assert proc.proc is not None
            proc.proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 20
            while "config reloaded by signal SIGHUP" not in proc.stderr():
                assert time.monotonic() < deadline, proc.stderr()[-2000:]
                time.sleep(0.05)
            with MLLPClient("127.0.0.1", port) as c:
                assert msa(c.send_message(adt("AFTER", "P1")))[0] == "AA"
            assert new.wait_for(lambda p: "AFTER" in p.control_ids(), 10)
            assert proc.running
        assert "AFTER" not in old.control_ids()
    (detail,) = _events(path, "config_reloaded")
    assert detail.startswith("by signal SIGHUP")


@pytest.mark.sqlite_only  # finds the engine's pid by eai.lock, taken on SQLite only
def test_eai_reload_falls_back_to_sighup_when_the_admin_socket_is_gone(tmp_path):
    port = listener_port()
    with MllpPeer() as old, MllpPeer() as new:
        path = fixed_routes(tmp_path, port, old.port)
        with EaiProcess(path, port, tmp_path / "engine.log").start() as proc:
            (tmp_path / "var" / "admin.sock").unlink()  # as if it were removed by hand
            _second_destination(path, new.port)
            code, out, err = _reload(path)
            assert code == 0, out + err
            assert (
                proc.proc is not None and f"sent SIGHUP to the engine (pid {proc.proc.pid})" in out
            )
            deadline = time.monotonic() + 20
            while "config reloaded by signal SIGHUP" not in proc.stderr():
                assert time.monotonic() < deadline, proc.stderr()[-2000:]
                time.sleep(0.05)
            with MLLPClient("127.0.0.1", port) as c:
                assert msa(c.send_message(adt("VIA-PID", "P1")))[0] == "AA"
            assert new.wait_for(lambda p: "VIA-PID" in p.control_ids(), 10)


REJECT_ALL = """rules:
  - id: TEST-NOM-ZZZ
    severity: reject
    reads: [birth_name]
    check: {pattern: "^ZZZ$"}
    message: test rule
"""


def test_charter_files_are_read_again_and_a_broken_one_refused(tmp_path):
    charter = tmp_path / "charter.yaml"
    charter.write_text("rules: []\n")
    with MllpPeer() as sink:
        path = write_routes(tmp_path, sink.port, extra=f"identity:\n  charter: [{charter}]\n")
        with EngineThread(path) as eng:

            def send(cid: str) -> None:
                with MLLPClient("127.0.0.1", eng.port("chu-x-adt")) as c:
                    assert msa(c.send_message(adt(cid, "P1")))[0] == "AA"

            send("BEFORE")
            assert sink.wait_for(lambda s: "BEFORE" in s.control_ids(), 10)
            charter.write_text(REJECT_ALL)
            code, out, err = _reload(path)
            assert code == 0, out + err
            send("RULED")
            charter.write_text("rules:\n  - id: X\n    severity: loud\n")
            code, out, err = _reload(path)
            assert code != 0 and f"{charter}:1:1:" in err, err
            send("STILL-RULED")
            deadline = time.monotonic() + 15
            while len(rows := _statuses(path)) < 3 or "received" in rows.values():
                assert time.monotonic() < deadline, rows
                time.sleep(0.1)
    assert rows == {"BEFORE": "processed", "RULED": "rejected", "STILL-RULED": "rejected"}
    assert sink.control_ids() == ["BEFORE"]


def _statuses(path: Path) -> dict[str, str]:
    res = eai_cli(path, "messages", "list", "--json")
    assert res.returncode == 0, res.stderr
    return {r["control_id"]: r["status"] for r in json.loads(res.stdout)}


def test_no_engine_running_is_said_with_the_unavailable_exit_code(tmp_path):
    path = write_routes(tmp_path, 9)
    code, out, err = _reload(path)
    assert code == 4, out + err
    assert f"eai: error: no engine is running on {tmp_path / 'var'}" in err
