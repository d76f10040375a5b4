"""examples/national-routes.yaml end to end with real mail servers: the national CR-BIO ORU
over MLLP -> mailed through a real Postfix (STARTTLS, client certificate, SASL by Dovecot)
to the professional and the patient's mailbox -> the DSNs Postfix really sends back (the
professional's delivered, the patient's mailbox unknown: bounced) and the professional's
read notification (RFC 8098, sent through Postfix) land in the application mailbox -> read
by the receipts reader from a real Dovecot (IMAP over TLS, client certificate) -> ZAM^Z02
Y, ZAM^Z02 N (SMTPERRORCODE 550) and ZAM^Z03 Y received by the establishment's MLLP peer,
visible in `eai messages show`; a stray mail is quarantined, counted, and makes no ZAM."""

from __future__ import annotations

import json
import shutil
import smtplib
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from eai.cli import cli
from standins.mllp import MllpPeer
from standins.net import free_port
from tests._cisis import ORU
from tests._dovecot import dovecot
from tests._mllp import MllpSender, msa
from tests._national import copy_example, eai_check, set_environment, write_seal
from tests._pki import Pki, make_pki
from tests._postfix import postfix
from tests._proc import EaiProcess, listener_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SENDER = "labo-auto@labo.mssante.fr"
PASSWORD = "bal-applicative-secret"
PS = "adam.hoda@test-ci-sis.mssante.fr"
INS = "279035121518989"
PATIENT = f"{INS}@patient.mssante.fr"


def wait(condition: Callable[[], Any], what: str, eng: EaiProcess) -> Any:
    return wait_until(condition, what, eng, 90.0, poll=0.3, tail=4000)


def submit(pki: Pki, port: int, mail_from: str, data: bytes) -> None:
    """A mail to the application mailbox through Postfix (STARTTLS, client certificate)."""
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    with smtplib.SMTP("localhost", port, timeout=10) as smtp:
        smtp.starttls(context=ctx)
        smtp.sendmail(mail_from, [SENDER], data)


def read_notification(message_id: str) -> bytes:
    """The professional's MUA: a read notification shaped as the MSSanté mail IG's
    (struct-msg-mdn.md: text, message/disposition-notification)."""
    return (
        f"From: {PS}\r\nTo: {SENDER}\r\nMessage-ID: <mdn.1@test-ci-sis.mssante.fr>\r\n"
        "Subject: XDM/1.0/DDM+Compte rendu (lu)\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=disposition-notification;\r\n"
        ' boundary="b1"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n'
        "Le message a été affiché.\r\n\r\n--b1\r\n"
        "Content-Type: message/disposition-notification\r\n\r\n"
        f"Original-Recipient: rfc822;{PS}\r\nFinal-Recipient: rfc822;{PS}\r\n"
        f"Original-Message-ID: {message_id}\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--b1--\r\n"
    ).encode()


def zams(peer: MllpPeer) -> list[list[list[str]]]:
    out = []
    for payload in list(peer.received):
        segs = [s.split("|") for s in payload.decode().split("\r") if s]
        if segs and segs[0][8].startswith("ZAM^"):
            out.append(segs)
    return out


def test_receipts_come_back_to_the_establishment_as_zams(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pki = make_pki(tmp_path / "pki")
    port = listener_port()
    config = copy_example(tmp_path, monkeypatch)
    config.write_text(config.read_text().replace("poll_interval: 30s", "poll_interval: 1s"))
    seal = write_seal(tmp_path)  # the example's DMP destination needs its seal to start
    sasl_dir = Path(tempfile.mkdtemp(prefix="eai-sasl-", dir="/tmp"))
    sasl_dir.chmod(0o755)
    sasl = sasl_dir / "auth"
    extra = (
        "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n"
        f"smtpd_sasl_path = {sasl}\nsmtpd_tls_auth_only = yes\n"
    )
    # patient.mssante.fr is one of Postfix's domains, the patient's mailbox is not in it:
    # accepted at RCPT, then bounced by Postfix with a real failure DSN
    mailboxes = [SENDER, PS, "someone-else@patient.mssante.fr"]
    try:
        with (
            MllpPeer() as peer,
            postfix(pki, mailboxes, extra) as mta,
            dovecot(
                pki,
                {SENDER: PASSWORD},
                mail_root=mta.directory / "vmail",
                owner="postfix",
                sasl_socket=sasl,
            ) as imap,
        ):
            set_environment(
                monkeypatch,
                pki,
                seal,
                port=port,
                return_port=peer.port,
                dmp_url=f"https://127.0.0.1:{free_port()}/repository",
                MSS_SMTP_HOST="127.0.0.1",
                MSS_SMTP_PORT=str(mta.port),
                MSS_IMAP_PORT=str(imap.port),
                MSS_SENDER=SENDER,
                MSS_USER=SENDER,
                MSS_PASSWORD=PASSWORD,
            )
            eai_check(config)
            with EaiProcess(config, port, tmp_path / "eai.log") as eng:
                eng.start()
                with MllpSender(port) as sender:
                    assert msa(sender.exchange(ORU))[0] == "AA"
                (mail,) = wait(lambda: mta.mailbox(PS), "the professional's mail", eng)
                # the two DSNs (delivered, bounced) -> two ZAM^Z02
                z02 = wait(lambda: len(zams(peer)) >= 2 and zams(peer), "two ZAM^Z02", eng)
                # the professional reads it; a stray mail comes too
                submit(pki, mta.port, "", read_notification(str(mail["Message-ID"])))
                submit(pki, mta.port, PS, b"Subject: hello\r\n\r\nnot a receipt\r\n")
                got = wait(lambda: len(zams(peer)) >= 3 and zams(peer), "the ZAM^Z03", eng)
                quarantined = wait(
                    lambda: imap.folder(SENDER, PASSWORD, "EAI-Quarantine"),
                    "the stray mail quarantined",
                    eng,
                )
                time.sleep(2.5)  # two more polls: nothing else comes
                processed = imap.folder(SENDER, PASSWORD, "EAI-Processed")
                listed = CliRunner().invoke(cli, ["messages", "list", "-c", str(config), "--json"])
                assert listed.exit_code == 0, listed.output
                (source,) = [m for m in json.loads(listed.output) if m.get("control_id") == "015"]
                shown = CliRunner().invoke(
                    cli, ["messages", "show", str(source["id"]), "-c", str(config), "--json"]
                )
                assert shown.exit_code == 0, shown.output
            log = (tmp_path / "eai.log").read_text(errors="replace")
            final = zams(peer)
    finally:
        shutil.rmtree(sasl_dir, ignore_errors=True)

    assert len(final) == 3, "a ZAM too many"
    by_event = {}
    for segs in z02:
        obx = [s for s in segs if s[0] == "OBX"]
        by_event[obx[1][5]] = segs
    delivered, bounced = by_event[f"^^X.400^{PS}"], by_event[f"^^X.400^{PATIENT}"]
    assert delivered[0][8] == bounced[0][8] == "ZAM^Z02^ZAM_Z01"
    assert delivered[0][11] == "2.6"
    assert [s for s in delivered if s[0] == "OBX"][0][5] == "Y^^expandedYes-NoIndicator"
    assert [s for s in delivered if s[0] == "OBX"][0][4] == "015"  # the ORU's MSH-10
    assert [s for s in bounced if s[0] == "OBX"][0][5] == "N^^expandedYes-NoIndicator"
    (err,) = [s for s in bounced if s[0] == "ERR"]
    assert err[5].split("^")[0::2] == ["550", "SMTPERRORCODE"]
    z03 = got[2]
    assert z03[0][8] == "ZAM^Z03^ZAM_Z01"
    obx = [s for s in z03 if s[0] == "OBX"]
    assert obx[0][3].startswith("ACK_LECTURE_MSS^") and obx[0][5].startswith("Y^")
    assert obx[1][3].startswith("LECTEUR_MSS^") and obx[1][5] == f"^^X.400^{PS}"

    (stray,) = quarantined
    assert "EaiMalformed" in stray[1]
    assert len(processed) == 3  # two DSNs and the MDN, none deleted
    assert "quarantined (EaiMalformed" in log and "1 quarantined since start" in log

    journey = json.loads(shown.output)
    events = journey["events"]
    receipts = [e["detail"] for e in events if e["kind"] == "receipt"]
    assert len(receipts) == 3
    assert any("the patient mailbox failed (5.1.1, SMTPERRORCODE 550)" in r for r in receipts)
    follow = [e["detail"] for e in events if e["kind"] == "follow_up"]
    assert sum("business_ack ZAM^Z02 to lab-return" in f for f in follow) == 2
    assert sum("business_ack ZAM^Z03 to lab-return" in f for f in follow) == 1
    lab_return = [d for d in journey["deliveries"] if d["destination"] == "lab-return"]
    assert [d["status"] for d in lab_return] == ["delivered"] * 3
    assert INS not in log
