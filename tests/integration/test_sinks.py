"""The demo sinks (standins.sinks) over real sockets: what they answer and what they print."""

from __future__ import annotations

import smtplib
import socket
from email.message import EmailMessage

import pytest

from standins.sinks.mllp import MllpSink
from standins.sinks.smtp import SmtpSink
from tests._mllp import MllpSender
from tests._paths import HL7V2

pytestmark = pytest.mark.integration


def _mail(subject: str, text: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "eai@grades.test"
    mail["To"] = "interop@chu-x.test"
    mail["Subject"] = subject
    mail.set_content(text)
    return mail


def test_smtp_sink_prints_each_mail_dot_unstuffed() -> None:
    lines: list[str] = []
    sink = SmtpSink(body=True, out=lines.append)
    port = sink.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.send_message(_mail("Rejet immédiat", "ligne 1\n.ligne à point\n."))
            smtp.send_message(_mail("second", "deux"))
    finally:
        sink.stop()
    assert len(lines) == 2 and len(sink.mails) == 2
    head, *body = lines[0].splitlines()
    assert head == "mail From: eai@grades.test  To: interop@chu-x.test  Subject: Rejet immédiat"
    assert body == ["  ligne 1", "  .ligne à point", "  ."]
    assert lines[1].startswith("mail From: eai@grades.test") and "Subject: second" in lines[1]


def test_smtp_sink_refuses_out_of_order_commands_and_large_mails() -> None:
    lines: list[str] = []
    sink = SmtpSink(out=lines.append, max_bytes=2000)
    port = sink.start()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            assert smtp.ehlo()[0] == 250
            assert smtp.rcpt("a@b.test")[0] == 503  # RCPT before MAIL
            assert smtp.docmd("DATA")[0] == 503  # DATA before RCPT
            assert smtp.docmd("VRFY", "x")[0] == 502
            with pytest.raises(smtplib.SMTPDataError) as err:
                smtp.send_message(_mail("big", "x" * 5000))
            assert err.value.smtp_code == 552
            assert smtp.noop()[0] == 250  # the session goes on
            smtp.send_message(_mail("small", "ok"))
    finally:
        sink.stop()
    assert len(lines) == 1 and "Subject: small" in lines[0]


def test_mllp_sink_answers_aa_and_prints_type_control_id_and_size() -> None:
    payload = (HL7V2 / "pamfr_a01_admission.er7").read_bytes()
    lines: list[str] = []
    sink = MllpSink(out=lines.append)
    port = sink.start()
    try:
        with MllpSender(port) as sender:
            ack = sender.exchange(payload)
        assert b"MSA|AA|3975" in ack
    finally:
        sink.stop()
    assert lines == [f"ADT^A01^ADT_A01 3975 {len(payload)} bytes"]


def test_mllp_sink_show_prints_the_segments() -> None:
    payload = b"MSH|^~\\&|A|B|C|D|20260101||ORU^R01|X1|P|2.5\rPID|1||42\r"
    lines: list[str] = []
    sink = MllpSink(show=True, out=lines.append)
    port = sink.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"\x0b" + payload + b"\x1c\r")
            assert b"MSA|AA|X1" in s.recv(4096)
    finally:
        sink.stop()
    msh, pid = payload.decode().split("\r")[:2]
    assert lines == [f"ORU^R01 X1 {len(payload)} bytes\n  {msh}\n  {pid}"]
