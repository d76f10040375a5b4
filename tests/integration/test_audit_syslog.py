"""The audit trail reaches a real rsyslog over TLS (RFC 5425), and its backlog survives an
outage of the server and a restart of the forwarder."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from eai import audit
from eai.config import SyslogConfig
from eai.store import Store, audit_cursor
from standins.mllp import MllpPeer
from tests._database import database_url
from tests._pki import Pki, make_pki
from tests._rsyslog import Rsyslog
from tests.engine_harness import EngineThread, write_routes

pytestmark = pytest.mark.integration

KEY = "7b" * 32
SEQ = re.compile(r'\[meta sequenceId="(\d+)"\]')
BOM = "\ufeff"


class Forwarding:
    """A :class:`eai.audit.SyslogForwarder` running on its own loop, as in the engine."""

    def __init__(self, store: Store, cfg: SyslogConfig) -> None:
        self.forwarder = audit.SyslogForwarder(store, cfg, "eai-node-1")
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._loop.run_until_complete(self.forwarder.run(self._stopping))

    def __enter__(self) -> Forwarding:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(30)
        assert not self._thread.is_alive()
        self._loop.close()


def _seqs(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := SEQ.search(line))]


def _has(*wanted: int):  # type: ignore[no-untyped-def]
    return lambda lines: set(wanted) <= set(_seqs(lines))


def _cfg(pki: Pki, server: Rsyslog, **kw: object) -> SyslogConfig:
    return SyslogConfig.model_validate(
        {
            "host": "127.0.0.1",
            "port": server.port,
            "ca": str(pki.ca),
            "poll": 0.2,
            "retry_every": 0.3,
            "timeout": 5,
            **kw,
        }
    )


def _store(tmp_path: Path) -> Store:
    return Store(database_url(tmp_path / "var" / "eai.db"), tmp_path / "var", KEY)


def _add(store: Store, n: int, first: int) -> None:
    for i in range(first, first + n):
        audit.record(store, audit.account(f"user{i}", "192.0.2.1"), "login")


def test_records_arrive_and_the_backlog_survives_an_outage(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    store = _store(tmp_path)
    server = Rsyslog(tmp_path / "rsyslog", pki)
    try:
        server.start()
        cfg = _cfg(pki, server)
        _add(store, 3, 1)
        with Forwarding(store, cfg):
            assert server.wait_for(_has(1, 2, 3)), server.lines()
            server.stop()  # the SIEM goes away
            _add(store, 4, 4)
            assert not server.wait_for(_has(4), timeout=1.5)
            server.start()  # and comes back: the backlog follows
            assert server.wait_for(_has(4, 5, 6, 7)), server.lines()
        assert audit_cursor(store.engine, "syslog") == 7
        # the engine restarts while the SIEM is down: the new forwarder starts from the
        # persisted cursor
        server.stop()
        _add(store, 2, 8)
        server.start()
        with Forwarding(store, cfg):
            assert server.wait_for(_has(8, 9)), server.lines()
        assert audit_cursor(store.engine, "syslog") == 9
    finally:
        server.stop()
        store.engine.dispose()
    lines = server.lines()
    assert set(_seqs(lines)) == set(range(1, 10))
    assert _seqs(lines).count(8) == 1  # nothing sent twice across the clean restart
    header, _, body = lines[0].partition(BOM)
    assert re.match(
        r"^<85>1 \d{4}-\d\d-\d\dT[\d:.]+Z eai-node-1 eai - IHE\+RFC-3881 "
        r'\[meta sequenceId="1"\] $',
        header,
    ), header
    message = ET.fromstring(body)
    assert message.tag == "AuditMessage"
    event = message.find("EventIdentification")
    assert event is not None and event.get("EventActionCode") == "E"
    event_id = event.find("EventID")
    assert event_id is not None and event_id.get("csd-code") == "110114"
    [person] = [p for p in message.iter("ActiveParticipant") if p.get("UserIsRequestor") == "true"]
    assert person.get("UserID") == "user1" and person.get("NetworkAccessPointID") == "192.0.2.1"


def test_mutual_tls_and_fhir_json(tmp_path: Path) -> None:
    """A SIEM that requires the engine's certificate (x509/name): refused without it,
    served with it; the body in FHIR JSON."""
    pki = make_pki(tmp_path / "pki")
    store = _store(tmp_path)
    server = Rsyslog(tmp_path / "rsyslog", pki, auth="x509/name", permitted="gam.chu-x")
    try:
        server.start()
        _add(store, 2, 1)
        with Forwarding(store, _cfg(pki, server, format="fhir")):
            assert not server.wait_for(_has(1), timeout=2.0)
        assert audit_cursor(store.engine, "syslog") == 0  # nothing confirmed
        cfg = _cfg(pki, server, format="fhir", cert=str(pki.client_cert), key=str(pki.client_key))
        with Forwarding(store, cfg):
            assert server.wait_for(_has(1, 2)), server.lines()
    finally:
        server.stop()
        store.engine.dispose()
    header, _, body = server.lines()[-1].partition(BOM)
    assert " IHE+FHIR " in header
    event = AuditEvent.model_validate(json.loads(body))
    assert event.agent[0].who.identifier.value == "user2"


def test_the_engine_forwards_its_trail(tmp_path: Path) -> None:
    """``audit.syslog`` in routes.yaml: the running engine forwards what the CLI records."""
    pki = make_pki(tmp_path / "pki")
    server = Rsyslog(tmp_path / "rsyslog", pki)
    extra = (
        "audit:\n"
        "  retention: 3y\n"
        "  syslog:\n"
        f"    host: 127.0.0.1\n    port: {server.port}\n    ca: {pki.ca}\n"
        "    poll: 200ms\n    retry_every: 300ms\n"
    )
    try:
        server.start()
        with MllpPeer() as sink:
            path = write_routes(tmp_path, sink.port, extra=extra)
            with EngineThread(path) as eng:
                store = eng.engine.store
                assert store is not None
                audit.record(store, audit.os_user(), "pause", target="destination dcc")
                assert server.wait_for(_has(1)), server.lines()
    finally:
        server.stop()
    [line] = server.lines()
    assert 'csd-code="110100"' in line and 'ParticipantObjectID="audit-record"' in line
