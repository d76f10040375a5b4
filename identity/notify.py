"""Mails establishments about identity anomalies: one digest per facility per period,
an immediate mail for reject-level rules.

Touches: network (SMTP).

Mails carry rule ids, explanations, counts and MSH-10 control ids (so the
establishment finds its messages); never names, birth dates or INS.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

__all__ = ["DigestLine", "SmtpSettings", "build_mail", "send_mail"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DigestLine:
    """One rule broken by a facility's messages since the last mail."""

    rule: str
    severity: str
    explanation: str
    messages: int
    control_ids: tuple[str, ...]


class _Secret(Protocol):
    def get_secret_value(self) -> str: ...


class SmtpSettings(Protocol):
    """What :func:`send_mail` reads of its settings (``eai.config.SmtpConfig``)."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def timeout(self) -> float: ...
    @property
    def ssl(self) -> bool: ...
    @property
    def starttls(self) -> bool: ...
    @property
    def username(self) -> str | None: ...
    @property
    def password(self) -> _Secret | None: ...


_SEVERITY_FR = {"reject": "rejet", "hold": "mise en attente", "warn": "avertissement"}


def build_mail(
    facility: str,
    lines: Sequence[DigestLine],
    *,
    sender: str,
    to: Sequence[str],
    immediate: bool,
) -> EmailMessage:
    """The mail for one establishment (French: it goes to hospital interface teams)."""
    total = sum(line.messages for line in lines)
    msg = EmailMessage()
    kind = "Rejet immédiat" if immediate else "Synthèse"
    msg["Subject"] = f"[eai] {kind} : anomalies d'identité de {facility} ({total} message(s))"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    parts = [
        "Bonjour,",
        "",
        f"La plateforme régionale a relevé des écarts à la charte régionale "
        f"d'identification dans les flux de {facility}.",
        "",
    ]
    for line in lines:
        ids = ", ".join(line.control_ids[:20])
        more = f" (et {len(line.control_ids) - 20} autres)" if len(line.control_ids) > 20 else ""
        parts += [
            f"* Règle {line.rule} ({_SEVERITY_FR.get(line.severity, line.severity)}) : "
            f"{line.messages} message(s)",
            f"  {line.explanation}",
            f"  Messages concernés (MSH-10) : {ids}{more}" if ids else "",
            "",
        ]
    parts += [
        "Les messages sont conservés par la plateforme ; ceux mis en attente seront transmis "
        "dès qu'un message corrigé qualifiera l'identité.",
        "",
        "-- eai, plateforme régionale d'interopérabilité",
    ]
    msg.set_content("\n".join(p for p in parts if p is not None))
    return msg


def send_mail(settings: SmtpSettings, msg: EmailMessage) -> None:
    """Sends one mail (blocking: call it through ``run_blocking``)."""
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.ssl:
        smtp = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    with smtp:
        if settings.starttls:
            smtp.starttls(context=context)
        if settings.username and settings.password is not None:
            smtp.login(settings.username, settings.password.get_secret_value())
        smtp.send_message(msg)


def recipients(contacts: Mapping[str, Sequence[str]], facility: str) -> list[str]:
    return list(contacts.get(facility, ()))
