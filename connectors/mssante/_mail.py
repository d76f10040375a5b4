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

The MIME text (RFC 2045/2046: ``multipart/mixed``, the body ``text/plain; charset=utf-8``
in base64, ``IHE_XDM.zip`` and the PDF in base64) is written here rather than by
:mod:`email`'s generator, which took a third of a document's CPU time; the tests read
every mail back with :mod:`email`.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
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


def _b64_lines(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, CRLF-terminated (RFC 2045 §6.8)."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _header(name: str, value: str) -> bytes:
    """One header line: ASCII as it is, else an RFC 2047 encoded word (UTF-8), folded."""
    if value.isascii() and len(value) + len(name) < 900:
        return f"{name}: {value}\r\n".encode("ascii")
    encoded = Header(value, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode("ascii")


def _part(content_type: str, data: bytes, filename: str = "") -> bytes:
    head = f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n"
    if filename:
        head += f'Content-Disposition: attachment; filename="{filename}"\r\n'
    return head.encode("ascii") + b"\r\n" + _b64_lines(data)


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
    mid = message_id(item.delivery_id, config.sender, token)
    no_reply = part == "patient" and source.no_reply
    headers: list[tuple[str, str]] = [("From", config.sender), ("To", ", ".join(to))]
    if reply_to and not no_reply:
        headers.append(("Reply-To", ", ".join(reply_to)))
    headers += [
        ("Subject", _text(config.subject, xdm.title)),
        ("Date", format_datetime(when)),
        ("Message-ID", mid),
        ("MIME-Version", "1.0"),
        ("X-MSS-CODECDA", xdm.document_code),
        ("X-MSS-INS", "O" if item.facts.ins else "N"),
    ]
    if config.software_id:
        headers.append(("X-MSS-NIL", config.software_id))
    if no_reply:
        headers.append(("X-MSS-MES", "FIN"))
    if flags.get("ACK_LECTURE_MSS") == "Y":
        headers.append(("Disposition-Notification-To", config.sender))
    boundary = f"=_eai_{secrets.token_hex(12)}"
    headers.append(("Content-Type", f'multipart/mixed; boundary="{boundary}"'))
    parts = [
        _part("text/plain; charset=utf-8", body.replace("\n", "\r\n").encode("utf-8")),
        _part('application/zip; name="IHE_XDM.zip"', xdm.data, "IHE_XDM.zip"),
    ]
    if source.pdf:
        parts.append(_part('application/pdf; name="DOC0001.PDF"', source.pdf, "DOC0001.PDF"))
    delimiter = f"--{boundary}\r\n".encode("ascii")
    data = b"".join(
        [
            *(_header(name, value) for name, value in headers),
            b"\r\n",
            *(delimiter + p for p in parts),
            f"--{boundary}--\r\n".encode("ascii"),
        ]
    )
    return Mail(part, to, mid, data)


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
