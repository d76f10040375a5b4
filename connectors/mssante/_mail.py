"""The MSSanté mails of one delivery: recipients, headers, body, attachments (RFC 5322 bytes).

Touches: nothing.

One mail per recipient set: the professionals (PRT-4 ``RCT`` with an address in PRT-15.4,
body ``CORPSMAIL_PS``) and the patient (``<INS>@patient.mssante.fr``, body
``CORPSMAIL_PATIENT``), as the routing matrix allows (:mod:`._matrix`). Addressing per the
IG's ``mapping-mss.md``: ``From`` the application mailbox, ``To`` the RCT addresses,
``Reply-To`` the ``REPLY`` ones. A PRT RCT naming the patient (an INS, or an address at
``patient.mssante.fr``) is never mailed as given: the patient's mailbox is derived from the
qualified INS, and only when the matrix sends to the patient.

Headers of the Référentiel socle MSSanté #2 (clients de messagerie, v1.0, ECO.2.4.x):
``X-MSS-CODECDA`` (the CDA ``code``), ``X-MSS-INS`` (``O`` when the INS is qualified, else
``N``), ``X-MSS-NIL`` (the software's reference, when configured), ``X-MSS-MES: FIN`` (the
patient may not answer). Receipts: ``Disposition-Notification-To`` (RFC 8098) with
``ACK_LECTURE_MSS`` = Y; the DSN request (RFC 3461) is the SMTP client's (:mod:`._smtp`).
``Message-ID`` is ``<eai.<delivery id>.<random>@<sender's domain>>`` so that a receipt
names the delivery it answers.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from connectors.mssante._matrix import Audience
from connectors.mssante._source import MailSource
from connectors.mssante._xdm import Xdm
from connectors.mssante.config import MssanteDestinationConfig
from eai.errors import PermanentDeliveryError
from eai.messages import OutboxItem

__all__ = ["PATIENT_DOMAIN", "Mail", "build_mails", "message_id"]

PATIENT_DOMAIN = "patient.mssante.fr"


@dataclass(frozen=True, slots=True, repr=False)
class Mail:
    """One mail to send: its recipient set (``part``), envelope recipients and bytes."""

    part: str
    """``professionals`` or ``patient``."""
    recipients: tuple[str, ...]
    message_id: str
    data: bytes

    def __repr__(self) -> str:
        return f"Mail(part={self.part!r}, recipients={len(self.recipients)})"


def message_id(delivery_id: int, sender: str, token: Callable[[], str] | None = None) -> str:
    """``<eai.<delivery id>.<random>@<domain of sender>>``."""
    random = (token or (lambda: secrets.token_hex(8)))()
    return f"<eai.{delivery_id}.{random}@{sender.rpartition('@')[2]}>"


def _is_patient(kind: str, address: str) -> bool:
    return kind == "patient" or address.lower().endswith("@" + PATIENT_DOMAIN)


def _text(template: str, title: str) -> str:
    return template.replace("{title}", title)


def _mail(
    config: MssanteDestinationConfig,
    item: OutboxItem,
    source: MailSource,
    xdm: Xdm,
    part: str,
    to: tuple[str, ...],
    reply_to: tuple[str, ...],
    body: str,
    when: datetime,
    token: Callable[[], str] | None,
) -> Mail:
    flags = item.facts.flags
    msg = EmailMessage(policy=SMTP)
    mid = message_id(item.delivery_id, config.sender, token)
    msg["From"] = config.sender
    msg["To"] = ", ".join(to)
    no_reply = part == "patient" and source.no_reply
    if reply_to and not no_reply:
        msg["Reply-To"] = ", ".join(reply_to)
    msg["Subject"] = _text(config.subject, xdm.title)
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = mid
    msg["X-MSS-CODECDA"] = xdm.document_code
    msg["X-MSS-INS"] = "O" if item.facts.ins else "N"
    if config.software_id:
        msg["X-MSS-NIL"] = config.software_id
    if no_reply:
        msg["X-MSS-MES"] = "FIN"
    if flags.get("ACK_LECTURE_MSS") == "Y":
        msg["Disposition-Notification-To"] = config.sender
    msg.set_content(body, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_attachment(
        xdm.data, maintype="application", subtype="zip", filename="IHE_XDM.zip", cte="base64"
    )
    if source.pdf:
        msg.add_attachment(
            source.pdf, maintype="application", subtype="pdf", filename="DOC0001.PDF"
        )
    return Mail(part, to, mid, msg.as_bytes())


def build_mails(
    config: MssanteDestinationConfig,
    item: OutboxItem,
    source: MailSource,
    xdm: Xdm,
    audience: Audience,
    *,
    now: datetime | None = None,
    token: Callable[[], str] | None = None,
) -> list[Mail]:
    """The mails of ``item`` for ``audience``.

    Raises PermanentDeliveryError when the matrix sends to the professionals and the
    message names none with an address, or to the patient without a qualified INS."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    recipients = item.facts.recipients
    reply_to = tuple(r.address for r in recipients if r.role == "REPLY" and r.address)
    mails: list[Mail] = []
    if audience.professionals:
        to = tuple(
            dict.fromkeys(
                r.address
                for r in recipients
                if r.role == "RCT" and r.address and not _is_patient(r.kind, r.address)
            )
        )
        if not to:
            raise PermanentDeliveryError(
                "DESTMSSANTEPS=Y but the message names no professional recipient (PRT-4 RCT "
                "with an address in PRT-15.4)"
            )
        body = source.body_ps or _text(config.body_ps, xdm.title)
        mails.append(
            _mail(config, item, source, xdm, "professionals", to, reply_to, body, when, token)
        )
    if audience.patient:
        if not item.facts.ins:
            raise PermanentDeliveryError(
                "DESTMSSANTEPAT=Y without a qualified INS: the patient's mailbox is its INS"
            )
        to = (f"{item.facts.ins}@{PATIENT_DOMAIN}",)
        body = source.body_patient or _text(config.body_patient, xdm.title)
        mails.append(_mail(config, item, source, xdm, "patient", to, reply_to, body, when, token))
    return mails
