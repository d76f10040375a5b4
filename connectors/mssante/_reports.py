"""Read a receipt mail: a delivery status (RFC 3464) or disposition notification (RFC 8098).

Touches: nothing (bytes in, a :class:`Report` out; the stdlib ``email`` package parses).

Both come as ``multipart/report`` (RFC 6522) with a machine-readable part:

- ``report-type=delivery-status``: ``message/delivery-status``, a per-message block
  (``Original-Envelope-Id``: the ENVID the destination gave, ``eai-<delivery id>``) then one
  block per recipient (``Final-Recipient``, ``Original-Recipient``, ``Action``, ``Status``,
  ``Diagnostic-Code``); the returned headers (``RET=HDRS``: ``text/rfc822-headers``, or the
  whole ``message/rfc822``) carry the original ``Message-ID``;
- ``report-type=disposition-notification``: ``message/disposition-notification``
  (``Original-Message-ID``, ``Final-Recipient``, ``Disposition``), as the MSSanté mail IG's
  ``struct-msg-mdn.md`` shapes it (``processed/Error: <code>^<label>^<system>`` on error).

A mail that is not such a report, or lacks what correlation needs, raises
:class:`MalformedReport` with the reason (the reader quarantines it). Which mail a report
answers is found from the Message-ID the destination wrote (``<eai.<delivery id>.<random>@
<domain>>``) or the ENVID; whether to believe it is the reader's business (it checks the
delivery's journal).
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import Message
from typing import Final, Literal

__all__ = [
    "FINAL_ACTIONS",
    "MalformedReport",
    "RecipientReport",
    "Report",
    "delivery_id_of",
    "parse_report",
]

FINAL_ACTIONS: Final = {
    "delivered": True,
    "relayed": True,
    "expanded": True,
    "failed": False,
}
"""DSN ``Action`` (RFC 3464 2.3.3) -> delivered or not; ``delayed`` is not final (absent)."""

_READ: Final = frozenset({"displayed", "processed", "dispatched"})
"""MDN disposition types that say the mail was taken (RFC 8098 3.2.6.2); ``deleted`` and
any ``error`` modifier say it was not."""

_MID = re.compile(r"<eai\.(\d{1,18})\.[0-9a-f]+@[^<>\s]+>")
_ENVID = re.compile(r"eai-(\d{1,18})")
_MAX_RECIPIENTS = 1000


class MalformedReport(ValueError):
    """Not a report the reader can act on; the message says why (no patient data)."""


@dataclass(frozen=True, slots=True)
class RecipientReport:
    """What a report says about one recipient."""

    address: str
    """The recipient as the sender named it (``Original-Recipient``), else the
    ``Final-Recipient``; lower case."""
    action: str
    """DSN ``Action`` (delivered, failed, delayed...) or the MDN disposition type."""
    accepted: bool | None
    """Delivered (DSN) / read (MDN): True, failed / not read: False, not final: None."""
    status: str = ""
    """DSN ``Status`` (RFC 3463 enhanced code, ``5.1.1``)."""
    diagnostic: str = ""
    """DSN ``Diagnostic-Code`` (``smtp; 550 5.1.1 ...``) or the MDN error text."""
    final: str = ""
    """``Final-Recipient`` (the MDN's reader), lower case."""


@dataclass(frozen=True, slots=True)
class Report:
    """One receipt mail, read."""

    kind: Literal["dsn", "mdn"]
    envelope_id: str
    """DSN ``Original-Envelope-Id`` ("" when none, and for an MDN)."""
    original_message_id: str
    """The Message-ID of the mail it answers: MDN ``Original-Message-ID``, DSN returned
    headers' ``Message-ID`` ("" when the report does not return them)."""
    recipients: tuple[RecipientReport, ...]


def _address(value: str) -> str:
    """``rfc822;a@b`` -> ``a@b`` (RFC 3464 2.3.2: address-type ";" generic-address)."""
    kind, sep, rest = value.partition(";")
    text = rest if sep else kind
    return text.strip().strip("<>").strip().lower()


def _one_line(value: str | None) -> str:
    return " ".join(str(value or "").split())[:500]


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a ``message/delivery-status`` or
    ``message/disposition-notification`` part (the email package parses them as a list of
    messages, or as one message, depending on the subtype)."""
    payload = part.get_payload()
    if isinstance(payload, list):
        out: list[Message] = []
        for block in payload:
            if not isinstance(block, Message):
                raise MalformedReport("a report part that is not header blocks")
            out.append(block)
        return out
    if isinstance(payload, str):
        text = payload.replace("\r\n", "\n")
        return [
            email.message_from_string(chunk.strip() + "\n", policy=email.policy.compat32)
            for chunk in re.split(r"\n\s*\n", text)
            if chunk.strip()
        ]
    raise MalformedReport("a report part without fields")


def _returned_message_id(mail: Message) -> str:
    """The Message-ID of the returned original (``text/rfc822-headers`` or
    ``message/rfc822``), "" when not returned."""
    for part in mail.walk():
        ctype = part.get_content_type()
        if ctype == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            headers = email.message_from_string(text, policy=email.policy.compat32)
            return _one_line(headers.get("Message-ID"))
        if ctype == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return _one_line(inner[0].get("Message-ID"))
    return ""


def _dsn(mail: Message, part: Message) -> Report:
    blocks = _blocks(part)
    if len(blocks) < 2:
        raise MalformedReport("a delivery-status part without a per-recipient block")
    envid = _one_line(blocks[0].get("Original-Envelope-Id"))
    recipients: list[RecipientReport] = []
    for block in blocks[1 : 1 + _MAX_RECIPIENTS]:
        final = _address(_one_line(block.get("Final-Recipient")))
        action = _one_line(block.get("Action")).lower()
        if not final or not action:
            raise MalformedReport("a recipient block without Final-Recipient or Action")
        original = _address(_one_line(block.get("Original-Recipient")))
        recipients.append(
            RecipientReport(
                original or final,
                action,
                FINAL_ACTIONS.get(action),
                _one_line(block.get("Status")),
                _one_line(block.get("Diagnostic-Code")),
                final,
            )
        )
    return Report("dsn", envid, _returned_message_id(mail), tuple(recipients))


def _disposition(value: str) -> tuple[str, bool, str]:
    """``automatic-action/MDN-sent-automatically; processed/Error: 902^...`` -> (type,
    taken, error text). RFC 8098 3.2.6: modes ";" type ["/" modifier *("," modifier)]."""
    _, sep, rest = value.partition(";")
    if not sep:
        raise MalformedReport("a Disposition without its type")
    kind, _, modifiers = rest.strip().partition("/")
    kind = kind.strip().lower()
    if not kind:
        raise MalformedReport("a Disposition without its type")
    error = ""
    for modifier in modifiers.split(","):
        name, _, text = modifier.partition(":")
        if name.strip().lower() in ("error", "failure", "failed"):
            error = text.strip() or name.strip()
    return kind, kind in _READ and not error, error


def _mdn(part: Message) -> Report:
    blocks = _blocks(part)
    fields = blocks[0] if blocks else None
    if fields is None:
        raise MalformedReport("a disposition-notification part without fields")
    final = _address(_one_line(fields.get("Final-Recipient")))
    disposition = _one_line(fields.get("Disposition"))
    if not final or not disposition:
        raise MalformedReport("a disposition notification without Final-Recipient or Disposition")
    kind, taken, error = _disposition(disposition)
    original = _address(_one_line(fields.get("Original-Recipient")))
    recipient = RecipientReport(original or final, kind, taken, "", error, final)
    return Report("mdn", "", _one_line(fields.get("Original-Message-ID")), (recipient,))


def parse_report(data: bytes) -> Report:
    """The report in ``data`` (a whole mail). Raises :class:`MalformedReport`."""
    mail = email.message_from_bytes(data, policy=email.policy.compat32)
    if mail.get_content_type() != "multipart/report":
        raise MalformedReport(f"not a report ({mail.get_content_type()})")
    report_type = str(mail.get_param("report-type") or "").lower()
    wanted = {
        "delivery-status": "message/delivery-status",
        "disposition-notification": "message/disposition-notification",
    }.get(report_type)
    if wanted is None:
        raise MalformedReport(f"a report of an unknown type ({report_type[:40] or 'none'})")
    parts = mail.get_payload()
    part = (
        next(
            (p for p in parts if isinstance(p, Message) and p.get_content_type() == wanted),
            None,
        )
        if isinstance(parts, list)
        else None
    )
    if part is None:
        raise MalformedReport(f"a {report_type} report without its {wanted} part")
    return _dsn(mail, part) if wanted == "message/delivery-status" else _mdn(part)


def delivery_id_of(report: Report) -> int | None:
    """The delivery a report names: from the Message-ID the destination wrote, else from
    the ENVID (``eai-<id>``). None when it names none of ours."""
    found = _MID.fullmatch(report.original_message_id)
    if found:
        return int(found.group(1))
    found = _ENVID.fullmatch(report.envelope_id)
    return int(found.group(1)) if found else None
