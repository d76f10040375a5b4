"""The DATA of the MSSanté SMTP client: its dot-stuffing (done with bytes.replace instead
of smtplib's regular expression) sends every byte through, lines starting with a period
included; a 4xx answer to the data is still retried."""

from __future__ import annotations

import re
import smtplib

import pytest

from connectors.mssante._smtp import SmtpClient, _data
from eai.errors import TransientDeliveryError
from eai.net import client_context
from tests._mss_smtp import mss_config, mss_smtp
from tests._pki import Pki, make_pki

PS = "adam.hoda@test-ci-sis.mssante.fr"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("mss-data-pki"))


def client(pki: Pki, port: int) -> SmtpClient:
    cfg = mss_config(pki, port)
    return SmtpClient(cfg, client_context(cfg.tls))


BODIES = [
    b".starts with a period\r\n",
    b"..two periods\r\n.\r\nalone above\r\n",
    b"no final line end\r\n.",
    b"\r\n.\r\n..\r\n...\r\n",
    b"plain\r\n",
]


@pytest.mark.parametrize("body", BODIES)
def test_a_body_with_periods_at_line_starts_arrives_unchanged(pki: Pki, body: bytes) -> None:
    mail = (
        b"From: labo-auto@labo.mssante.fr\r\nTo: " + PS.encode() + b"\r\nSubject: dots\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body
    )
    with mss_smtp(pki) as inbox:
        smtp_client = client(pki, inbox.port)
        try:
            smtp_client.submit("labo-auto@labo.mssante.fr", (PS,), mail, "eai-1", False)
        finally:
            smtp_client.close()
    ((_, _, received),) = inbox.mails
    content = received.get_content()
    expected = body.decode() if body.endswith(b"\r\n") else body.decode() + "\r\n"
    assert content.replace("\r\n", "\n") == expected.replace("\r\n", "\n")


def test_the_quoting_is_smtplibs(pki: Pki) -> None:
    """What goes on the wire is what smtplib.SMTP.data sent."""
    sent: list[bytes] = []

    class Recorder(smtplib.SMTP):
        def putcmd(self, cmd: str, args: str = "") -> None:
            pass

        def getreply(self) -> tuple[int, bytes]:
            return 354 if not sent else 250, b"ok"

        def send(self, s: bytes | str) -> None:  # type: ignore[override]
            sent.append(s if isinstance(s, bytes) else s.encode())

    for body in [*BODIES, b"", b".", b"x\n.y\r\n"]:
        sent.clear()
        assert _data(Recorder(), body) == (250, b"ok")
        ours = sent[0]
        reference = re.sub(rb"(?m)^\.", b"..", body)
        reference += b"" if reference[-2:] == b"\r\n" else b"\r\n"
        assert ours == reference + b".\r\n"


def test_a_4xx_answer_to_the_data_is_retried(pki: Pki) -> None:
    with mss_smtp(pki) as inbox:
        inbox.data_answer = "451 4.3.0 later"
        smtp_client = client(pki, inbox.port)
        try:
            with pytest.raises(TransientDeliveryError, match="451"):
                smtp_client.submit(
                    "labo-auto@labo.mssante.fr", (PS,), b"Subject: x\r\n\r\ny\r\n", "e", False
                )
        finally:
            smtp_client.close()
    assert not inbox.mails
