"""Receipt mails read (RFC 3464 DSN, RFC 8098 MDN), the SMTPERRORCODE of a failure, and what
a report means for its delivery: believed only when it answers a Message-ID the delivery
recorded; ZAM^Z02 / ZAM^Z03 per recipient it was meant for, when the message asked."""

from __future__ import annotations

import pytest

from connectors.mssante._correlate import Unverified, decide, intended
from connectors.mssante._reports import MalformedReport, delivery_id_of, parse_report
from connectors.mssante._status import smtp_code
from eai.messages import MEDIA_HL7V2, MessageFacts, OutboxItem, Recipient

SOURCE = (
    b"MSH|^~\\&|SIL-Y|labo|PFI-X|Organisation-X|20240101||ORU^R01^ORU_R01|015|P|2.5|||||FRA"
    b"|UNICODE UTF-8|||2.1^CISIS_CDA_HL7_V2\r"
)
PS = "adam.hoda@test-ci-sis.mssante.fr"
INS = "279035121518989"
PATIENT = f"{INS}@patient.mssante.fr"
MID = "<eai.41.977d1e681ab12556@labo.mssante.fr>"
ATTEMPT = f"#1 delivered: ENVID eai-41; professionals: Message-ID {MID} to 2 recipient(s)"

# Recorded from a real Postfix 3.7 (tests/_postfix.py: the mss destination mailing an
# unknown recipient of a virtual domain), shortened: the failure DSN it sent back.
POSTFIX_FAILED = b"""\
Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.mss.test>
Subject: Undelivered Mail Returned to Sender
To: labo-auto@labo.mssante.fr
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="2D469213273.1796604700/mx.mss.test"
Message-Id: <20261207005140.4335921327D@mx.mss.test>

This is a MIME-encapsulated message.

--2D469213273.1796604700/mx.mss.test
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

<nobody@test-ci-sis.mssante.fr>: unknown user: "nobody@test-ci-sis.mssante.fr"

--2D469213273.1796604700/mx.mss.test
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.mss.test
Original-Envelope-Id: eai-41
X-Postfix-Queue-ID: 2D469213273
X-Postfix-Sender: rfc822; labo-auto@labo.mssante.fr
Arrival-Date: Mon,  7 Dec 2026 00:51:40 +0000 (UTC)

Final-Recipient: rfc822; nobody@test-ci-sis.mssante.fr
Original-Recipient: rfc822;nobody@test-ci-sis.mssante.fr
Action: failed
Status: 5.1.1
Diagnostic-Code: X-Postfix; unknown user: "nobody@test-ci-sis.mssante.fr"

--2D469213273.1796604700/mx.mss.test
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <labo-auto@labo.mssante.fr>
From: labo-auto@labo.mssante.fr
To: adam.hoda@test-ci-sis.mssante.fr, nobody@test-ci-sis.mssante.fr
Message-ID: <eai.41.977d1e681ab12556@labo.mssante.fr>
X-MSS-CODECDA: 11502-2

--2D469213273.1796604700/mx.mss.test--
"""

# The MSSanté mail IG's negative MDN (struct-msg-mdn.md), with our Message-ID.
IG_MDN = b"""\
From: serviceY_auto@chb.mssante.fr
Message-ID: <20240220001900.12345@chb.mssante.fr>
Subject: [KO Int\xc3\xa9gration syst\xc3\xa8me !][902] XDM/1.0/DDM+ECHOGRAPHIE
To: labo-auto@labo.mssante.fr
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification;
 boundary="RAA14128.773615765"

--RAA14128.773615765
Content-Type: text/plain; charset="UTF-8"

Le document n'a pas pu \xc3\xaatre int\xc3\xa9gr\xc3\xa9.

--RAA14128.773615765
Content-Type: message/disposition-notification

Original-Recipient: rfc822;adam.hoda@test-ci-sis.mssante.fr
Final-Recipient: rfc822;adam.hoda@test-ci-sis.mssante.fr
Original-Message-ID: <eai.41.977d1e681ab12556@labo.mssante.fr>
Disposition:automatic-action/MDN-sent-automatically; processed/Error: 902^Identifiant de \
patient inconnu^messageErrorCondition| E^Error^errorSeverity

--RAA14128.773615765--
"""


def delivered_dsn(rcpt: str = PS) -> bytes:
    return (
        POSTFIX_FAILED.replace(b"Action: failed", b"Action: delivered")
        .replace(b"Status: 5.1.1", b"Status: 2.0.0")
        .replace(b"nobody@test-ci-sis.mssante.fr", rcpt.encode())
    )


def mdn(disposition: str) -> bytes:
    return IG_MDN.split(b"Disposition:")[0] + (
        f"Disposition: {disposition}\n\n--RAA14128.773615765--\n".encode()
    )


def item(*, ask: str = "Y", return_to: str = "lab-return", nobody: bool = True) -> OutboxItem:
    recipients = [Recipient("RCT", "professional", PS), Recipient("REPLY", "address", PS)]
    if nobody:
        recipients.append(Recipient("RCT", "professional", "nobody@test-ci-sis.mssante.fr"))
    flags = {"ACK_RECEPTION": ask, "ACK_LECTURE_MSS": ask, "DESTMSSANTEPAT": "Y"}
    return OutboxItem(
        41,
        7,
        "mss",
        SOURCE,
        "015",
        "k",
        1,
        media_type=MEDIA_HL7V2,
        facts=MessageFacts(flags, tuple(recipients), INS),
        return_to=return_to,
    )


def segments(payload: bytes) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for seg in payload.decode().split("\r"):
        if seg:
            out.setdefault(seg[:3], []).append(seg.split("|"))
    return out


def test_a_real_postfix_failure_dsn_is_read() -> None:
    report = parse_report(POSTFIX_FAILED)
    assert (report.kind, report.envelope_id, report.original_message_id) == ("dsn", "eai-41", MID)
    (r,) = report.recipients
    assert (r.address, r.action, r.accepted, r.status) == (
        "nobody@test-ci-sis.mssante.fr",
        "failed",
        False,
        "5.1.1",
    )
    assert r.diagnostic.startswith("X-Postfix; unknown user")
    assert delivery_id_of(report) == 41


def test_the_ig_mdn_is_read_with_its_error() -> None:
    report = parse_report(IG_MDN)
    assert (report.kind, report.original_message_id, report.envelope_id) == ("mdn", MID, "")
    (r,) = report.recipients
    assert (r.action, r.accepted, r.final) == ("processed", False, PS)
    assert r.diagnostic.startswith("902^Identifiant de patient inconnu")
    displayed = parse_report(mdn("manual-action/MDN-sent-manually; displayed")).recipients[0]
    assert (displayed.action, displayed.accepted) == ("displayed", True)
    deleted = parse_report(mdn("manual-action/MDN-sent-manually; deleted")).recipients[0]
    assert deleted.accepted is False


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"From: a@b.test\r\nSubject: hi\r\n\r\nhello\r\n", "not a report"),
        (
            POSTFIX_FAILED.replace(b"report-type=delivery-status", b"report-type=feedback"),
            "unknown type",
        ),
        (
            POSTFIX_FAILED.replace(b"Content-Type: message/delivery-status", b"Content-Type: x/y"),
            "without its message/delivery-status part",
        ),
        (POSTFIX_FAILED.replace(b"Action: failed\n", b""), "without Final-Recipient or Action"),
        (mdn("no-type-here"), "Disposition without its type"),
        (IG_MDN.replace(b"Final-Recipient", b"X-Other"), "without Final-Recipient"),
    ],
)
def test_malformed_reports_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedReport, match=reason):
        parse_report(data)


def test_the_delivery_comes_from_the_message_id_else_the_envid() -> None:
    report = parse_report(POSTFIX_FAILED.replace(MID.encode(), b"<other@x.test>"))
    assert delivery_id_of(report) == 41  # the ENVID
    report = parse_report(POSTFIX_FAILED.replace(b"eai-41", b"something-else"))
    assert delivery_id_of(report) == 41  # the Message-ID
    both_gone = POSTFIX_FAILED.replace(b"eai-41", b"x").replace(MID.encode(), b"<o@x.test>")
    assert delivery_id_of(parse_report(both_gone)) is None


@pytest.mark.parametrize(
    ("status", "diagnostic", "code"),
    [
        ("5.1.1", "smtp; 550 5.1.1 <x@y>: Recipient address rejected", "550"),
        ("5.7.1", "smtp;554 5.7.1 refused", "554"),
        ("5.1.1", 'X-Postfix; unknown user: "x"', "550"),
        ("5.2.2", "X-Postfix; mailbox full", "552"),
        ("5.1.2", "", "512"),
        ("4.4.7", "X-Postfix; delivery temporarily suspended", "420"),
        ("5.9.9", "", "554"),
        ("4.9.9", "", "451"),
        ("", "", "554"),
    ],
)
def test_smtperrorcode_from_the_reply_else_the_enhanced_status(
    status: str, diagnostic: str, code: str
) -> None:
    assert smtp_code(status, diagnostic) == code


def test_a_failure_dsn_makes_a_z02_n_with_its_smtperrorcode() -> None:
    decision = decide(parse_report(POSTFIX_FAILED), item(), (ATTEMPT,))
    (zam,) = decision.follow_ups
    assert (zam.destination, zam.kind) == ("lab-return", "business_ack ZAM^Z02")
    seg = segments(zam.payload)
    assert seg["MSH"][0][8] == "ZAM^Z02^ZAM_Z01"
    assert seg["OBX"][0][3].split("^")[0] == "ACK_RECEPTION_MSS"
    assert seg["OBX"][0][4] == "015"
    assert seg["OBX"][0][5] == "N^^expandedYes-NoIndicator"
    assert seg["OBX"][1][5] == "^^X.400^nobody@test-ci-sis.mssante.fr"
    code, label, system = seg["ERR"][0][5].split("^")
    assert (code, system) == ("550", "SMTPERRORCODE")
    assert label.startswith("Action non effectuée")
    assert "failed (5.1.1, SMTPERRORCODE 550)" in decision.detail


def test_a_delivered_dsn_makes_a_z02_y_and_the_patient_is_never_named() -> None:
    decision = decide(parse_report(delivered_dsn(PATIENT)), item(), (ATTEMPT,))
    (zam,) = decision.follow_ups
    seg = segments(zam.payload)
    assert seg["OBX"][0][5] == "Y^^expandedYes-NoIndicator"
    assert seg["OBX"][1][5] == f"^^X.400^{PATIENT}"  # the ZAM names it, for the sender
    assert "ERR" not in seg
    assert "the patient mailbox delivered (2.0.0)" in decision.detail
    assert INS not in decision.detail


def test_an_mdn_makes_a_z03_with_the_reader_and_its_application_error() -> None:
    decision = decide(parse_report(IG_MDN), item(), (ATTEMPT,))
    (zam,) = decision.follow_ups
    seg = segments(zam.payload)
    assert seg["MSH"][0][8] == "ZAM^Z03^ZAM_Z01"
    assert seg["OBX"][0][3].split("^")[0] == "ACK_LECTURE_MSS"
    assert seg["OBX"][0][5] == "N^^expandedYes-NoIndicator"
    assert seg["OBX"][1][3].split("^")[0] == "LECTEUR_MSS"
    assert seg["OBX"][1][5] == f"^^X.400^{PS}"
    assert seg["ERR"][0][5].split("^")[0::2] == ["902", "applicationErrorCondition"]
    read = decide(
        parse_report(mdn("manual-action/MDN-sent-manually; displayed")), item(), (ATTEMPT,)
    )
    assert segments(read.follow_ups[0].payload)["OBX"][0][5] == "Y^^expandedYes-NoIndicator"


def test_a_report_is_believed_only_for_a_message_id_the_delivery_recorded() -> None:
    forged = POSTFIX_FAILED.replace(MID.encode(), b"<eai.41.0123456789abcdef@labo.mssante.fr>")
    with pytest.raises(Unverified, match="sent no mail with the Message-ID"):
        decide(parse_report(forged), item(), (ATTEMPT,))
    other = POSTFIX_FAILED.replace(b"eai-41", b"eai-42")
    with pytest.raises(Unverified, match="ENVID"):
        decide(parse_report(other), item(), (ATTEMPT,))
    headerless = POSTFIX_FAILED.split(
        b"--2D469213273.1796604700/mx.mss.test\nContent-Description: Undelivered"
    )[0]
    with pytest.raises(Unverified, match="does not give the Message-ID"):
        decide(parse_report(headerless), item(), (ATTEMPT,))
    with pytest.raises(Unverified, match="names none of the delivery's recipients"):
        decide(parse_report(POSTFIX_FAILED), item(nobody=False), (ATTEMPT,))


def test_no_zam_when_not_asked_or_no_return_destination_or_not_final() -> None:
    for it in (item(ask="N"), item(return_to="")):
        decision = decide(parse_report(POSTFIX_FAILED), it, (ATTEMPT,))
        assert decision.follow_ups == ()
        assert "no ZAM (not asked, or no business_acks)" in decision.detail
    delayed = POSTFIX_FAILED.replace(b"Action: failed", b"Action: delayed")
    decision = decide(parse_report(delayed), item(), (ATTEMPT,))
    assert decision.follow_ups == () and "not final, no ZAM" in decision.detail


def test_the_intended_recipients_are_the_rct_and_the_qualified_patient() -> None:
    assert intended(item()) == {PS, "nobody@test-ci-sis.mssante.fr", PATIENT}
    unqualified = OutboxItem(
        41, 7, "mss", SOURCE, "015", "k", 1, facts=MessageFacts({"DESTMSSANTEPAT": "Y"})
    )
    assert intended(unqualified) == set()
