"""An MSSanté operator's SMTP server for the tests: aiosmtpd with TLS, answers per recipient.

Touches: network (127.0.0.1, a free port).

STARTTLS required (or implicit TLS), a client certificate of the test CA required (or
optional for implicit TLS: aiosmtpd's readiness probe has none); ``answers`` maps a
recipient address to the reply its RCPT gets (``"550 5.1.1 unknown"``, ``"451 4.3.0
later"``), ``data_answer`` the reply to DATA. ``mails`` keeps (envelope sender, envelope
recipients, parsed mail) of what was accepted. ``default_answer`` (None: accept) answers
every other RCPT, after ``delay`` seconds (a delay longer than the client's response
timeout is no answer).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from connectors.mssante.config import MssanteDestinationConfig
from standins.net import free_port
from tests._pki import Pki

__all__ = ["MssInbox", "mss_config", "mss_smtp"]


class MssInbox:
    def __init__(self) -> None:
        self.answers: dict[str, str] = {}
        self.default_answer: str | None = None
        self.delay = 0.0
        self.data_answer = "250 2.0.0 OK"
        self.mails: list[tuple[str, list[str], EmailMessage]] = []
        self.rcpt_calls = 0
        self.port = 0

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.rcpt_calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self.answers.get(address, self.default_answer)
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if not self.data_answer.startswith("250"):
            return self.data_answer
        mail = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), mail))
        return self.data_answer


def _context(pki: Pki, require_client_cert: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.load_verify_locations(pki.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    return ctx


@contextmanager
def mss_smtp(
    pki: Pki, *, implicit: bool = False, login: tuple[str, str] | None = None
) -> Iterator[MssInbox]:
    """``with mss_smtp(pki) as inbox: ... inbox.port ...``; ``login``: AUTH required
    (PLAIN/LOGIN, after STARTTLS) with this user and password."""
    inbox = MssInbox()
    port = free_port()
    auth: dict[str, Any] = {}
    if login is not None:

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
            ok = (data.login.decode(), data.password.decode()) == login
            return AuthResult(success=ok, handled=False)

        auth = {"auth_required": True, "authenticator": authenticator}
    if implicit:
        controller = Controller(
            inbox, hostname="127.0.0.1", port=port, ssl_context=_context(pki, False)
        )
    else:
        controller = Controller(
            inbox,
            hostname="127.0.0.1",
            port=port,
            tls_context=_context(pki, True),
            require_starttls=True,
            **auth,
        )
    controller.start()
    inbox.port = port
    try:
        yield inbox
    finally:
        controller.stop()


def mss_config(pki: Pki, port: int) -> MssanteDestinationConfig:
    """An ``mssante`` destination mailing the :func:`mss_smtp` server on ``port``: STARTTLS
    to ``localhost`` of the test CA with the client certificate, short timeouts."""
    return MssanteDestinationConfig.model_validate(
        {
            "name": "mss",
            "host": "127.0.0.1",
            "port": port,
            "tls": {
                "ca": str(pki.ca),
                "server_hostname": "localhost",
                "cert": str(pki.client_cert),
                "key": str(pki.client_key),
            },
            "sender": "labo-auto@labo.mssante.fr",
            "source_id": "1.2.250.1.999.1.1",
            "connect_timeout": "3s",
            "response_timeout": "5s",
        }
    )
