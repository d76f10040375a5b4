"""Property tests of the receipt reader's parsing: any mail gives a Report or MalformedReport,
and a read report gives a Decision or Unverified, nothing else (a mail that raised
anything else would stop every poll at the head of the mailbox).

Random bytes, and a real Postfix DSN / the IG's MDN with random lines cut, repeated or
replaced (where the interesting paths are)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.mssante._correlate import Unverified, decide
from connectors.mssante._reports import MalformedReport, Report, parse_report
from eai.messages import MEDIA_HL7V2, MessageFacts, OutboxItem, Recipient

pytestmark = pytest.mark.fuzz

DSN = b"""\
From: Mail Delivery System <MAILER-DAEMON@mx.mss.test>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="B"
Message-Id: <r1@mx.mss.test>

--B
Content-Type: text/plain; charset=us-ascii

failed
--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.mss.test
Original-Envelope-Id: eai-41

Final-Recipient: rfc822; adam.hoda@test-ci-sis.mssante.fr
Original-Recipient: rfc822;adam.hoda@test-ci-sis.mssante.fr
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 unknown

--B
Content-Type: text/rfc822-headers

Message-ID: <eai.41.977d1e681ab12556@labo.mssante.fr>

--B--
"""
MDN = b"""\
From: adam.hoda@test-ci-sis.mssante.fr
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification; boundary="M"

--M
Content-Type: message/disposition-notification

Final-Recipient: rfc822;adam.hoda@test-ci-sis.mssante.fr
Original-Message-ID: <eai.41.977d1e681ab12556@labo.mssante.fr>
Disposition: automatic-action/MDN-sent-automatically; processed/Error: 902^x^y

--M--
"""
ITEM = OutboxItem(
    41,
    7,
    "mss",
    b"MSH|^~\\&|SIL|labo|PFI|org|20240101||ORU^R01^ORU_R01|015|P|2.5\r",
    "015",
    "k",
    1,
    media_type=MEDIA_HL7V2,
    facts=MessageFacts(
        {"ACK_RECEPTION": "Y", "ACK_LECTURE_MSS": "Y"},
        (Recipient("RCT", "professional", "adam.hoda@test-ci-sis.mssante.fr"),),
    ),
    return_to="lab-return",
)
ATTEMPTS = (
    "#1 delivered: ENVID eai-41; professionals: Message-ID "
    "<eai.41.977d1e681ab12556@labo.mssante.fr> to 1 recipient(s)",
)
NOISE = st.binary(max_size=80) | st.sampled_from(
    [
        b"",
        b"--B",
        b"--M",
        b"Action: delivered",
        b"Action:",
        b"Status: 4.4.7",
        b"Final-Recipient: ;",
        b"Final-Recipient: rfc822;",
        b"Disposition: ;",
        b"Disposition: a/b; displayed/error",
        b"Content-Type: message/rfc822",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=B",
        b"Original-Message-ID: <eai.99999999999999999999.ab@x>",
        b"\xff\xfe\x00",
    ]
)


def _check(data: bytes) -> None:
    try:
        report = parse_report(data)
    except MalformedReport:
        return
    assert isinstance(report, Report)
    try:
        decide(report, ITEM, ATTEMPTS)
    except Unverified:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_a_report_or_malformed(data: bytes) -> None:
    _check(data)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([DSN, MDN]),
    st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["cut", "dup", "set"]), NOISE)),
)
def test_mutated_reports_give_a_decision_or_a_refusal(
    base: bytes, edits: list[tuple[int, str, bytes]]
) -> None:
    lines = base.split(b"\n")
    for at, how, noise in edits:
        i = at % len(lines)
        if how == "cut":
            del lines[i]
        elif how == "dup":
            lines.insert(i, lines[i])
        else:
            lines[i] = noise
        if not lines:
            lines = [b""]
    _check(b"\n".join(lines))
