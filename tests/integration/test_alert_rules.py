"""Each alert rule fires on what it watches, in a running engine: rejects of one
establishment (mailed to its contacts and the region, not to the others), dead letters,
a peer certificate refused by a TLS listener (a client certificate from another CA), a
listener that stopped listening, a disk fuller than the threshold; the journal rule
stays ok while the journal writes, fires when it cannot."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eai.store import list_alerts
from standins.mllp import MllpPeer
from standins.net import free_port
from tests._journal_db import allow_inserts, journal_db, refuse_inserts
from tests._mllp import MllpSender, msa
from tests._pki import make_pki
from tests._smtp import Inbox, smtp_server
from tests.engine_harness import EngineThread, adt, write_routes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REGION = "exploitation@grades.test"
CHU_X = "interop@chu-x.test"
CHU_Y = "interop@chu-y.test"

SECURE = """  - name: secure
    type: mllp
    bind: 127.0.0.1:0
    allowed_senders: [CHU-X]
    tls: {{cert: {cert}, key: {key}, client_ca: {ca}, require_client_cert: true}}
"""
ALERTS = """
identity:
  contacts: {{CHU-X: [{chu_x}], CHU-Y: [{chu_y}]}}
  smtp: {{host: 127.0.0.1, port: {smtp}, sender: eai@grades.test}}
alerts:
  notify: [{region}]
  every: 0.3s
  group_wait: 1s
  rules:
    - {{rule: rejected_rate, max: 3, window: 1m}}
    - {{rule: dead_letters, window: 1h}}
    - {{rule: peer_cert_rejected, window: 1m}}
    - {{rule: listener_down}}
    - {{rule: disk_usage, max_percent: 0.001}}
    - {{rule: journal_failing}}
"""


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    with smtp_server() as server:
        yield server


def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_each_rule_fires_on_what_it_watches(tmp_path: Path, inbox: Inbox) -> None:
    pki = make_pki(tmp_path / "pki")
    path = write_routes(tmp_path, free_port(), max_attempts=1)
    secure = SECURE.format(cert=pki.server_cert, key=pki.server_key, ca=pki.ca)
    alerts = ALERTS.format(chu_x=CHU_X, chu_y=CHU_Y, smtp=inbox.port, region=REGION)
    path.write_text(path.read_text().replace("destinations:", secure + "destinations:", 1) + alerts)
    with EngineThread(path) as eng:
        with MllpSender(eng.port("chu-x-adt")) as sender:
            for i in range(3):  # not allowed on this listener: AR, journaled as rejected
                code, _ = msa(sender.exchange(adt(f"Y{i}", facility="CHU-Y")))
                assert code == "AR"
            code, _ = msa(sender.exchange(adt("X1")))  # dcc refuses: dead at once
            assert code == "AA"
        _rogue_handshake(eng.port("secure"), pki.ca, pki.rogue_cert, pki.rogue_key)
        store = eng.engine.store
        assert store is not None

        def states() -> dict[tuple[str, str], str]:
            return {(r.rule, r.scope): r.state for r in list_alerts(store.engine)}

        local = "" if store.is_sqlite else f"@{eng.engine.node_id}"  # a node's own scopes
        wanted = {
            ("rejected_rate", "establishment:CHU-Y"): "firing",
            ("dead_letters", "destination:dcc"): "firing",
            ("peer_cert_rejected", f"listener:secure{local}"): "firing",
            ("peer_cert_rejected", f"listener:chu-x-adt{local}"): "ok",
            ("disk_usage", f"engine:data_dir{local}"): "firing",
            ("journal_failing", f"engine:journal{local}"): "ok",
            ("listener_down", f"listener:secure{local}"): "ok",
        }
        assert _wait(lambda: states().items() >= wanted.items()), states()
        loop = eng._loop
        assert loop is not None
        asyncio.run_coroutine_threadsafe(eng.engine.listeners["secure"].stop(1.0), loop).result(10)
        assert _wait(lambda: states()[("listener_down", f"listener:secure{local}")] == "firing")
        assert _wait(lambda: len({m["To"] for m in inbox.mails}) == 3)
        time.sleep(1.5)
    by_to: dict[str, str] = {}
    for mail in inbox.mails:
        by_to[mail["To"]] = by_to.get(mail["To"], "") + mail.get_content()
    assert "messages rejetés de CHU-Y" in by_to[CHU_Y]
    assert "dcc" not in by_to[CHU_Y]  # CHU-Y's flows only
    assert "envois abandonnés vers dcc" in by_to[CHU_X]  # dcc carries CHU-X's flows
    assert "messages rejetés de CHU-Y" not in by_to[CHU_X]
    for expected in (
        "messages rejetés de CHU-Y",
        "envois abandonnés vers dcc",
        "certificat d'un correspondant refusé (secure)",
        "point d'entrée secure fermé",
        "disque presque plein",
        "eai messages list --status rejected --since 1h",
    ):
        assert expected in by_to[REGION], expected
    assert "écriture du journal" not in by_to[REGION]


def _rogue_handshake(port: int, ca: Path, cert: Path, key: Path) -> None:
    """A TLS client whose certificate another CA signed: the listener refuses it."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.load_cert_chain(cert, key)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass


def test_a_journal_that_cannot_write_fires_then_resolves(tmp_path: Path, inbox: Inbox) -> None:
    """Every insert into ``messages`` aborted (what a full disk looks like to the engine):
    the message is answered AE and the journal rule fires; writable again, it resolves."""
    path = write_routes(tmp_path, free_port())
    alerts = (
        f"identity:\n  smtp: {{host: 127.0.0.1, port: {inbox.port}, sender: eai@grades.test}}\n"
        f"alerts:\n  notify: [{REGION}]\n  every: 0.3s\n  group_wait: 0s\n"
        "  rules:\n    - {rule: journal_failing, window: 2s}\n"
    )
    path.write_text(path.read_text() + alerts)
    with EngineThread(path) as eng:
        with journal_db(path) as c:
            refuse_inserts(c, "messages", "database or disk is full")
        with MllpSender(eng.port("chu-x-adt")) as sender:
            code, _ = msa(sender.exchange(adt("J1")))
        assert code == "AE"
        assert _wait(lambda: len(inbox.mails) == 1)
        with journal_db(path) as c:
            allow_inserts(c, "messages")
        assert _wait(lambda: len(inbox.mails) == 2)
    subjects = [str(m["Subject"]) for m in inbox.mails]
    assert subjects == [
        "[eai] Alerte : écriture du journal en échec (messages refusés AE)",
        "[eai] Résolue : écriture du journal en échec (messages refusés AE)",
    ]
    assert "1 message(s) refusé(s)" in inbox.mails[0].get_content()


def test_a_destination_whose_server_certificate_is_refused(tmp_path: Path, inbox: Inbox) -> None:
    """The DCC answers TLS with a certificate from another CA: each attempt fails on it,
    and peer_cert_rejected fires for destination:dcc."""
    pki = make_pki(tmp_path / "pki")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki.rogue_server_cert, pki.rogue_server_key)
    with MllpPeer(tls=server) as dcc:
        path = write_routes(tmp_path, dcc.port)
        text = path.read_text().replace(
            f"    port: {dcc.port}\n",
            f"    port: {dcc.port}\n    tls: {{ca: {pki.ca}, server_hostname: localhost}}\n",
            1,
        )
        alerts = (
            f"identity:\n  smtp: {{host: 127.0.0.1, port: {inbox.port}, sender: eai@x.test}}\n"
            f"alerts:\n  notify: [{REGION}]\n  every: 0.3s\n  group_wait: 0s\n"
            "  rules:\n    - {rule: peer_cert_rejected, window: 1m}\n"
        )
        path.write_text(text + alerts)
        with EngineThread(path) as eng:
            with MllpSender(eng.port("chu-x-adt")) as sender:
                code, _ = msa(sender.exchange(adt("T1")))
            assert code == "AA"
            assert _wait(lambda: len(inbox.mails) == 1)
        assert dcc.control_ids() == []
    assert str(inbox.mails[0]["Subject"]) == (
        "[eai] Alerte : certificat d'un correspondant refusé (dcc)"
    )
