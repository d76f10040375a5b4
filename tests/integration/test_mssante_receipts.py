"""The MSSanté receipts reader against a real Dovecot (IMAP over TLS, client certificate
required) and a real journal: DSNs (recorded from a real Postfix) and MDNs become receipt
events and ZAM^Z02 / ZAM^Z03 follow-ups of the source message; the mails go to the
processed folder, never deleted; unknown, forged and malformed mails go to quarantine with
their reason and are counted, with no ZAM; a crash between journaling and moving makes no
second ZAM."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.mssante._imap import ImapError, ImapMailbox
from connectors.mssante.receipts import MssanteReceiptsConfig, ReceiptsReader
from eai import hl7
from eai.messages import FollowUp, JournalEntry, MessageFacts, OutboxItem, Recipient
from eai.metrics import RECEIPT_OUTCOMES, registry
from eai.registry import ReceiptJournal
from eai.store import (
    DeliveryOutcome,
    MessagePlan,
    PlannedDelivery,
    Store,
    apply_plans,
    claim_deliveries,
    claim_messages,
    delivery_record,
    message_detail,
    record_outcomes,
    record_receipt,
)
from tests._cisis import ORU
from tests._database import database_url
from tests._dovecot import Dovecot, dovecot
from tests._pki import Pki, make_pki

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SENDER = "labo-auto@labo.mssante.fr"
PASSWORD = "bal-secret"
PS = "adam.hoda@test-ci-sis.mssante.fr"
INS = "279035121518989"
PATIENT = f"{INS}@patient.mssante.fr"
TOKEN = "977d1e681ab12556"

# A real Postfix 3.7 DSN (tests/_postfix.py, the mss destination sending to an unknown
# recipient of a virtual domain, 2026-12-07), recipient and ids made parameters.
POSTFIX_DSN = """\
Return-Path: <>
Date: Mon,  7 Dec 2026 00:51:40 +0000 (UTC)
From: Mail Delivery System <MAILER-DAEMON@mx.mss.test>
Subject: {subject}
To: labo-auto@labo.mssante.fr
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="2D469213273.1796604700/mx.mss.test"
Message-Id: <{report_id}@mx.mss.test>

This is a MIME-encapsulated message.

--2D469213273.1796604700/mx.mss.test
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.mss.test.

--2D469213273.1796604700/mx.mss.test
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.mss.test
Original-Envelope-Id: {envid}
X-Postfix-Queue-ID: 2D469213273
X-Postfix-Sender: rfc822; labo-auto@labo.mssante.fr
Arrival-Date: Mon,  7 Dec 2026 00:51:40 +0000 (UTC)

Final-Recipient: rfc822; {rcpt}
Original-Recipient: rfc822;{rcpt}
Action: {action}
Status: {status}
Diagnostic-Code: X-Postfix; {diagnostic}

--2D469213273.1796604700/mx.mss.test
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <labo-auto@labo.mssante.fr>
From: labo-auto@labo.mssante.fr
To: adam.hoda@test-ci-sis.mssante.fr
Subject: XDM/1.0/DDM+Compte rendu d'examens biologiques
Message-ID: {mid}
X-MSS-CODECDA: 11502-2

--2D469213273.1796604700/mx.mss.test--
"""

# The MSSanté mail IG's MDN (struct-msg-mdn.md), with our ids.
MDN = """\
Date: Tue, 20 Feb 2024 00:19:00 +0100 (CET)
From: {reader}
Message-ID: <{report_id}@test-ci-sis.mssante.fr>
Subject: XDM/1.0/DDM+Compte rendu
To: labo-auto@labo.mssante.fr
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification;
 boundary="RAA14128.773615765"

--RAA14128.773615765
Content-Type: text/plain; charset="UTF-8"

Le document a été lu.

--RAA14128.773615765
Content-Type: message/disposition-notification

Original-Recipient: rfc822;{reader}
Final-Recipient: rfc822;{reader}
Original-Message-ID: {mid}
Disposition: {disposition}

--RAA14128.773615765--
"""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def dsn(
    delivery: int,
    rcpt: str = PS,
    *,
    action: str = "delivered",
    status: str = "2.0.0",
    diagnostic: str = "delivery via virtual: delivered to maildir",
    report_id: str = "20261207005140.43F2721327C",
    mid: str = "",
    envid: str = "",
) -> bytes:
    return (
        POSTFIX_DSN.format(
            subject="Successful Mail Delivery Report",
            report_id=report_id,
            envid=envid or f"eai-{delivery}",
            rcpt=rcpt,
            action=action,
            status=status,
            diagnostic=diagnostic,
            mid=mid or f"<eai.{delivery}.{TOKEN}@labo.mssante.fr>",
        )
        .replace("\n", "\r\n")
        .encode()
    )


def mdn(delivery: int, disposition: str, report_id: str = "mdn-1") -> bytes:
    return (
        MDN.format(
            reader=PS,
            report_id=report_id,
            mid=f"<eai.{delivery}.{TOKEN}@labo.mssante.fr>",
            disposition=disposition,
        )
        .replace("\n", "\r\n")
        .encode()
    )


class Journal:
    """The engine's ReceiptJournal over a Store (as eai.engine wires it)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def __call__(self, entry: JournalEntry):  # noqa: ANN204 - Ingest
        return await self.store.ingest(entry)

    async def delivery_record(self, delivery_id: int) -> tuple[OutboxItem, tuple[str, ...], bool]:
        def read() -> tuple[OutboxItem, tuple[str, ...], bool]:
            with self.store.engine.connect() as conn:
                record = delivery_record(conn, self.store.cipher, delivery_id)
            return record.item, record.attempts, record.status in ("delivered", "dead")

        return await asyncio.to_thread(read)

    async def record_receipt(
        self, delivery_id: int, key: str, detail: str, follow_ups: Sequence[FollowUp]
    ) -> bool:
        store = self.store
        made = await store.writer.run(
            lambda c: record_receipt(c, store.cipher, delivery_id, key, detail, follow_ups, _now())
        )
        return made is not None


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(database_url(tmp_path / "eai.db"), tmp_path / "data")
    s.start()
    yield s
    s.close()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def server(pki: Pki) -> Iterator[Dovecot]:
    with dovecot(pki, {SENDER: PASSWORD}) as d:
        yield d


def delivered(
    store: Store, *, ask: str = "Y", return_to: str = "lab-return", final: bool = True
) -> int:
    """The CR-BIO ORU journaled, routed to ``mss`` and delivered (its attempt recording the
    ENVID and the mails' Message-IDs as the destination does); returns the delivery id."""
    entry = JournalEntry(
        listener="lab",
        payload=ORU,
        received_at=datetime.now(UTC),
        control_id="015",
        message_type="ORU^R01",
    )
    mid = asyncio.run(store.ingest(entry)).message_id
    store.writer.run_sync(lambda c: claim_messages(c, "n", _now(), 30.0, 10))
    message = hl7.parse(ORU)
    recipients = tuple(
        Recipient(p.role, p.kind, p.address, p.identifier, p.identifier_system, p.identifier_type)
        for p in hl7.mss_participants(message)
    )
    flags = {**hl7.meta_dmp_mss(message), "ACK_RECEPTION": ask, "ACK_LECTURE_MSS": ask}
    facts = MessageFacts(flags, recipients, INS, "1.2.250.1.213.1.4.10")
    planned = PlannedDelivery(
        "mss", "lab-to-mss", facts=store.cipher.seal(facts.to_json()), return_to=return_to
    )
    plan = MessagePlan(mid, "processed", routes=("lab-to-mss",), deliveries=(planned,))
    store.writer.run_sync(lambda c: apply_plans(c, [plan], _now()))
    (row,) = store.writer.run_sync(lambda c: claim_deliveries(c, "mss", "n", _now(), 30, 10))
    detail = (
        f"ENVID eai-{row.id}; professionals: Message-ID <eai.{row.id}.{TOKEN}@labo.mssante.fr> "
        f"to 1 recipient(s); patient: Message-ID <eai.{row.id}.{TOKEN}@labo.mssante.fr> to 1 "
        "recipient(s)"
    )
    if not final:  # the professionals' mail went, the patient's is retried
        retry = DeliveryOutcome(row.id, mid, "retrying", 1, _now(), "MSSanté SMTP RCPT: 451")
        store.writer.run_sync(lambda c: record_outcomes(c, [retry], _now(), store.cipher))
        return row.id
    done = DeliveryOutcome(row.id, mid, "delivered", 1, _now(), detail)
    store.writer.run_sync(lambda c: record_outcomes(c, [done], _now(), store.cipher))
    return row.id


def finish(store: Store, delivery: int) -> None:
    """The retried delivery's final outcome, naming both mails."""
    detail = (
        f"ENVID eai-{delivery}; professionals: Message-ID <eai.{delivery}.{TOKEN}@labo.mssante.fr>"
        " to 1 recipient(s)"
    )
    done = DeliveryOutcome(delivery, _message_of(store, delivery), "delivered", 2, _now(), detail)
    store.writer.run_sync(lambda c: record_outcomes(c, [done], _now(), store.cipher))


def reader(
    server: Dovecot, pki: Pki, store: Store, *, cert: bool = True, security: str = "tls"
) -> ReceiptsReader:
    tls = {"ca": str(pki.ca), "server_hostname": "localhost"}
    if cert:
        tls |= {"cert": str(pki.client_cert), "key": str(pki.client_key)}
    config = MssanteReceiptsConfig.model_validate(
        {
            "name": "mss-receipts",
            "host": "127.0.0.1",
            "port": server.port,
            "security": security,
            "tls": tls,
            "user": SENDER,
            "password": PASSWORD,
            "timeout": "10s",
        }
    )
    journal = Journal(store)
    assert isinstance(journal, ReceiptJournal)
    return ReceiptsReader(config, journal)


def zams(store: Store, delivery: int) -> list[bytes]:
    view = message_detail(store.engine, _message_of(store, delivery))
    out = []
    for d in view.deliveries:
        if d.follow_up_of == delivery:
            with store.engine.connect() as conn:
                out.append(delivery_record(conn, store.cipher, d.id).item.payload)
    return out


def _message_of(store: Store, delivery: int) -> int:
    with store.engine.connect() as conn:
        return delivery_record(conn, store.cipher, delivery).item.message_id


def fields(zam: bytes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for seg in zam.decode().split("\r"):
        if seg:
            out.setdefault(seg[:3], []).append(seg)
    return out


def test_dsns_and_mdns_become_zams_and_the_mails_are_moved(
    server: Dovecot, pki: Pki, store: Store
) -> None:
    did = delivered(store)
    server.append(SENDER, PASSWORD, dsn(did))
    server.append(
        SENDER,
        PASSWORD,
        dsn(
            did,
            PATIENT,
            action="failed",
            status="5.1.1",
            diagnostic=f'unknown user: "{PATIENT}"',
            report_id="20261207005140.4335921327D",
        ),
    )
    server.append(SENDER, PASSWORD, mdn(did, "manual-action/MDN-sent-manually; displayed"))
    before = _receipt_outcomes()
    report = asyncio.run(reader(server, pki, store).poll())
    assert (report.journaled, report.zams, report.already) == (3, 3, 0)
    assert not report.quarantined
    assert _receipt_outcomes()["journaled"] - before["journaled"] == 3

    made = [fields(z) for z in zams(store, did)]
    assert [m["MSH"][0].split("|")[8] for m in made] == [
        "ZAM^Z02^ZAM_Z01",
        "ZAM^Z02^ZAM_Z01",
        "ZAM^Z03^ZAM_Z01",
    ]
    ok, failed, read = made
    assert ok["OBX"][0].split("|")[5] == "Y^^expandedYes-NoIndicator"
    assert ok["OBX"][0].split("|")[4] == "015"  # the source's MSH-10
    assert ok["OBX"][1].split("|")[3].startswith("DESTINATAIRE_MSS^")
    assert ok["OBX"][1].split("|")[5] == f"^^X.400^{PS}"
    assert "ERR" not in ok
    assert failed["OBX"][0].split("|")[5] == "N^^expandedYes-NoIndicator"
    assert failed["OBX"][1].split("|")[5] == f"^^X.400^{PATIENT}"
    err5 = failed["ERR"][0].split("|")[5].split("^")
    assert (err5[0], err5[2]) == ("550", "SMTPERRORCODE")
    assert read["OBX"][0].split("|")[3].startswith("ACK_LECTURE_MSS^")
    assert read["OBX"][0].split("|")[5] == "Y^^expandedYes-NoIndicator"
    assert read["OBX"][1].split("|")[3].startswith("LECTEUR_MSS^")
    assert read["OBX"][1].split("|")[5] == f"^^X.400^{PS}"

    view = message_detail(store.engine, _message_of(store, did))
    receipts = [e.detail for e in view.events if e.kind == "receipt"]
    assert len(receipts) == 3
    assert any("the patient mailbox failed (5.1.1, SMTPERRORCODE 550)" in r for r in receipts)
    assert all(INS not in r for r in receipts)  # the patient's mailbox is its INS
    assert len([e for e in view.events if e.kind == "follow_up"]) == 3
    assert server.folder(SENDER, PASSWORD, "INBOX") == []
    moved = server.folder(SENDER, PASSWORD, "EAI-Processed")
    assert len(moved) == 3
    assert all("\\Seen" not in flags for _, flags in moved)  # read with BODY.PEEK


def _receipt_outcomes() -> dict[str, float]:
    """``eai_mssante_receipts_total`` of the tests' reader, per outcome (process-wide)."""
    labels = {"listener": "mss-receipts"}
    return {
        o: registry().get_sample_value("eai_mssante_receipts_total", labels | {"outcome": o}) or 0
        for o in RECEIPT_OUTCOMES
    }


def test_unknown_forged_and_malformed_mails_are_quarantined_with_their_reason(
    server: Dovecot, pki: Pki, store: Store
) -> None:
    did = delivered(store)
    server.append(SENDER, PASSWORD, b"From: someone@x.test\r\nSubject: hello\r\n\r\nhi\r\n")
    # names a delivery of ours, but not a mail it sent (a guessed Message-ID)
    forged = f"<eai.{did}.0123456789abcdef@labo.mssante.fr>"
    server.append(SENDER, PASSWORD, dsn(did, mid=forged, report_id="forged"))
    server.append(SENDER, PASSWORD, dsn(999, report_id="unknown"))  # no such delivery
    server.append(SENDER, PASSWORD, dsn(did, report_id="envid", envid=f"eai-{did + 1}"))
    server.append(SENDER, PASSWORD, mdn(did, "no-type-here", report_id="bad-mdn"))
    rdr = reader(server, pki, store)
    before = _receipt_outcomes()
    report = asyncio.run(rdr.poll())
    assert report.journaled == 0 and report.zams == 0
    assert dict(report.quarantined) == {"EaiMalformed": 2, "EaiUnverified": 2, "EaiUnknown": 1}
    assert rdr.quarantined == report.quarantined
    counted = {o: n - before[o] for o, n in _receipt_outcomes().items() if n != before[o]}
    assert counted == {
        "quarantined_malformed": 2,
        "quarantined_unverified": 2,
        "quarantined_unknown": 1,
    }
    assert zams(store, did) == []
    kept = server.folder(SENDER, PASSWORD, "EAI-Quarantine")
    assert len(kept) == 5  # nothing deleted
    keywords = [
        " ".join(w for w in f.split("FLAGS (")[1].split(")")[0].split() if w[0] != "\\")
        for _, f in kept
    ]
    assert sorted(keywords) == sorted(
        ["EaiMalformed", "EaiUnverified", "EaiUnknown", "EaiUnverified", "EaiMalformed"]
    )
    assert server.folder(SENDER, PASSWORD, "INBOX") == []


def test_a_crash_between_journaling_and_moving_makes_no_second_zam(
    server: Dovecot, pki: Pki, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    did = delivered(store)
    server.append(SENDER, PASSWORD, dsn(did))
    real_move = ImapMailbox.move

    def lost(self: ImapMailbox, uid: int, folder: str, keywords: Sequence[str] = ()) -> None:
        raise ImapError("IMAP move: connection lost")  # the journal has committed

    monkeypatch.setattr(ImapMailbox, "move", lost)
    with pytest.raises(ImapError):
        asyncio.run(reader(server, pki, store).poll())
    assert len(zams(store, did)) == 1
    assert len(server.folder(SENDER, PASSWORD, "INBOX")) == 1  # still there

    monkeypatch.setattr(ImapMailbox, "move", real_move)
    report = asyncio.run(reader(server, pki, store).poll())  # a new reader: a restart
    assert (report.journaled, report.already, report.zams) == (0, 1, 0)
    assert len(zams(store, did)) == 1
    assert server.folder(SENDER, PASSWORD, "INBOX") == []
    assert len(server.folder(SENDER, PASSWORD, "EAI-Processed")) == 1


def test_no_zam_when_the_message_did_not_ask_and_a_delayed_dsn_is_not_final(
    server: Dovecot, pki: Pki, store: Store
) -> None:
    quiet = delivered(store, ask="N")
    server.append(SENDER, PASSWORD, dsn(quiet))
    asked = delivered(store)
    server.append(
        SENDER,
        PASSWORD,
        dsn(asked, action="delayed", status="4.4.1", diagnostic="connect timeout", report_id="d"),
    )
    report = asyncio.run(reader(server, pki, store).poll())
    assert (report.journaled, report.zams) == (2, 0)
    assert zams(store, quiet) == [] and zams(store, asked) == []
    quiet_view = message_detail(store.engine, _message_of(store, quiet))
    (event,) = [e for e in quiet_view.events if e.kind == "receipt"]
    assert f"{PS} delivered (2.0.0), no ZAM (not asked, or no business_acks)" in event.detail


def test_the_reader_needs_its_client_certificate(server: Dovecot, pki: Pki, store: Store) -> None:
    did = delivered(store)
    server.append(SENDER, PASSWORD, dsn(did))
    with pytest.raises(ImapError, match="cannot open the mailbox"):
        asyncio.run(reader(server, pki, store, cert=False).poll())
    assert zams(store, did) == []
    assert len(server.folder(SENDER, PASSWORD, "INBOX")) == 1


def test_starttls_is_taken_before_login(pki: Pki, store: Store) -> None:
    with dovecot(pki, {SENDER: PASSWORD}, starttls=True) as plain_port:
        did = delivered(store)
        plain_port.append(SENDER, PASSWORD, dsn(did))
        report = asyncio.run(reader(plain_port, pki, store, security="starttls").poll())
        assert (report.journaled, report.zams) == (1, 1)
        assert len(plain_port.folder(SENDER, PASSWORD, "EAI-Processed")) == 1


def test_a_receipt_before_its_delivery_is_final_waits_for_the_outcome(
    server: Dovecot, pki: Pki, store: Store
) -> None:
    did = delivered(store, final=False)  # its mail's Message-ID not recorded yet
    server.append(SENDER, PASSWORD, dsn(did))
    rdr = reader(server, pki, store)
    report = asyncio.run(rdr.poll())
    assert (report.waiting, report.journaled, sum(report.quarantined.values())) == (1, 0, 0)
    assert len(server.folder(SENDER, PASSWORD, "INBOX")) == 1  # left where it was
    finish(store, did)
    report = asyncio.run(rdr.poll())
    assert (report.waiting, report.journaled, report.zams) == (0, 1, 1)
    assert server.folder(SENDER, PASSWORD, "INBOX") == []
