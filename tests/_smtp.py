"""A real SMTP server for the tests (aiosmtpd on 127.0.0.1) that keeps what it receives."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from standins.net import free_port

__all__ = ["Inbox", "smtp_server"]


class Inbox(Message):
    """The mails received, parsed (``mail.get_content()``, ``mail["Subject"]``)."""

    def __init__(self) -> None:
        super().__init__()
        self.mails: list[EmailMessage] = []
        self.port = 0

    def handle_message(self, message: Any) -> None:
        parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.mails.append(parsed)


@contextmanager
def smtp_server() -> Iterator[Inbox]:
    """``with smtp_server() as inbox: ... port=inbox.port ...; inbox.mails``."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    try:
        yield inbox
    finally:
        controller.stop()
