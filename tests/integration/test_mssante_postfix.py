"""MSSanté destination against a real Postfix: STARTTLS with a required client certificate,
the mails in the recipients' Maildirs, and the DSNs Postfix really sends back (RFC 3464)
for a delivered recipient (NOTIFY=SUCCESS) and an unknown one, naming the delivery."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from connectors.mssante.config import MssanteDestinationConfig
from connectors.mssante.destination import MssanteDestination
from eai import hl7
from eai.errors import TransientDeliveryError
from eai.messages import MessageFacts, OutboxItem, Recipient
from tests._cisis import ORU, build, segments
from tests._pki import make_pki
from tests._postfix import postfix

SENDER = "labo-auto@labo.mssante.fr"
PS = "adam.hoda@test-ci-sis.mssante.fr"
UNKNOWN = "nobody@test-ci-sis.mssante.fr"


def item(delivery_id: int) -> OutboxItem:
    segs = segments(ORU)
    at = next(i for i, s in enumerate(segs) if s.startswith("PRT||UC||RCT"))
    payload = build(
        [
            *segs[: at + 1],
            f"PRT||UC||RCT^^participation|||||||||||^^X.400^{UNKNOWN}",
            *segs[at + 1 :],
        ]
    )
    message = hl7.parse(payload)
    recipients = tuple(
        Recipient(p.role, p.kind, p.address, p.identifier, p.identifier_system, p.identifier_type)
        for p in hl7.mss_participants(message)
    )
    flags = {**hl7.meta_dmp_mss(message), "INVISIBLE_PATIENT": "Y", "DESTMSSANTEPAT": "N"}
    return OutboxItem(
        delivery_id, 1, "mss", payload, "015", "k", 1, facts=MessageFacts(flags, recipients)
    )


def destination(tmp: Path, port: int, pki, *, cert: bool = True) -> MssanteDestinationConfig:
    tls = {"ca": str(pki.ca), "server_hostname": "localhost"}
    if cert:
        tls |= {"cert": str(pki.client_cert), "key": str(pki.client_key)}
    return MssanteDestinationConfig.model_validate(
        {
            "name": "mss",
            "host": "127.0.0.1",
            "port": port,
            "tls": tls,
            "sender": SENDER,
            "source_id": "1.2.250.1.999.1.1",
            "connect_timeout": "5s",
            "response_timeout": "10s",
        }
    )


def send(cfg: MssanteDestinationConfig, it: OutboxItem):
    async def run():
        dest = MssanteDestination(cfg)
        try:
            return await dest.send(it)
        finally:
            await dest.close()

    return asyncio.run(run())


def test_postfix_takes_the_mail_over_starttls_and_sends_back_real_dsns(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    with postfix(pki, [SENDER, PS]) as server:
        with pytest.raises(TransientDeliveryError):  # no client certificate: refused
            send(destination(tmp_path, server.port, pki, cert=False), item(40))
        result = send(destination(tmp_path, server.port, pki), item(41))
        (mail,) = server.wait_mailbox(PS, 1)
        assert mail["X-MSS-CODECDA"] == "11502-2" and mail["X-MSS-INS"] == "N"
        assert mail["Message-ID"] in result.detail
        assert "TLS" in (mail["Received"] or "") or "ESMTPS" in str(mail["Received"])
        # the unknown recipient was accepted at RCPT, then bounced: a failure DSN, and the
        # delivered one a success DSN (NOTIFY=SUCCESS asked: ACK_RECEPTION=Y)
        reports = server.wait_mailbox(SENDER, 2)
    by_action: dict[str, str] = {}
    for report in reports:
        assert report.get_content_type() == "multipart/report"
        assert report.get_param("report-type") == "delivery-status"
        status = next(p for p in report.walk() if p.get_content_type() == "message/delivery-status")
        text = status.as_string()
        assert "Original-Envelope-Id: eai-41" in text
        action = "failed" if "Action: failed" in text else "delivered"
        by_action[action] = text
    assert set(by_action) == {"failed", "delivered"}
    assert f"rfc822;{UNKNOWN}" in by_action["failed"] and "Status: 5." in by_action["failed"]
    assert f"rfc822;{PS}" in by_action["delivered"]
