"""What a receipt means for the delivery it names: believed or not, its journal line, its ZAMs.

Touches: nothing.

A report (:mod:`._reports`) names a delivery by the Message-ID or ENVID the destination
wrote; both can be typed by anyone, so it is believed only when the delivery's own journal
(its ``attempt`` events, where the destination recorded ``ENVID eai-<id>`` and each mail's
``Message-ID <eai.<id>.<random>@...>``) holds the Message-ID it answers: the random part is
not guessable. A DSN must return the original's headers (``RET=HDRS``, which the
destination asks) for that check; a DSN's ENVID, when given, must be the delivery's.

Then, per recipient the report names that the delivery was meant for (its PRT ``RCT``
addresses, the patient's mailbox), when the message asked for it (``ACK_RECEPTION`` /
``ACK_LECTURE_MSS`` = Y) and its route names a ``business_acks`` destination
(:func:`eai.business_ack.zam_follow_up`):

- DSN ``delivered`` / ``relayed`` / ``expanded``: ZAM^Z02 ``Y`` (DESTINATAIRE_MSS the
  recipient); ``failed``: ZAM^Z02 ``N`` with ERR-5 from the SMTPERRORCODE table
  (:mod:`._status`); ``delayed``: journaled only (a final report follows);
- MDN ``displayed`` / ``processed`` / ``dispatched``: ZAM^Z03 ``Y`` (LECTEUR_MSS the
  reader, its ``Final-Recipient``); ``deleted`` or an error: ZAM^Z03 ``N``, ERR-5 from the
  applicationErrorCondition table when the MDN gives one of its codes
  (``processed/Error: 902^...``, ``struct-msg-mdn.md``), else the text in ERR-8.

The journal line names professionals' addresses, never the patient's (its mailbox is its
INS): that one is "the patient mailbox".
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.mssante._mail import PATIENT_DOMAIN
from connectors.mssante._reports import RecipientReport, Report
from connectors.mssante._status import smtp_code
from eai.business_ack import (
    APPLICATION_ERROR_CONDITIONS,
    ZamError,
    application_error,
    smtp_error,
    unexplained_error,
    zam_follow_up,
)
from eai.messages import FollowUp, OutboxItem

__all__ = ["Decision", "Unverified", "decide", "intended"]


class Unverified(ValueError):
    """The report does not answer a mail the delivery it names sent (no patient data)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """A believed report: its journal line and the ZAMs it makes."""

    detail: str
    follow_ups: tuple[FollowUp, ...]


def intended(item: OutboxItem) -> set[str]:
    """The mailboxes the delivery was meant for (lower case)."""
    out = {
        r.address.lower()
        for r in item.facts.recipients
        if r.role == "RCT" and r.address and not r.address.lower().endswith("@" + PATIENT_DOMAIN)
    }
    if item.facts.flags.get("DESTMSSANTEPAT") == "Y" and item.facts.ins:
        out.add(f"{item.facts.ins}@{PATIENT_DOMAIN}")
    return out


def _named(address: str) -> str:
    return "the patient mailbox" if address.endswith("@" + PATIENT_DOMAIN) else address


def _verify(report: Report, item: OutboxItem, attempts: tuple[str, ...]) -> None:
    recorded = "\n".join(attempts)
    if not report.original_message_id:
        raise Unverified(
            f"the {report.kind.upper()} does not give the Message-ID of the mail it answers"
        )
    if f"Message-ID {report.original_message_id}" not in recorded:
        raise Unverified(
            f"delivery {item.delivery_id} sent no mail with the Message-ID the "
            f"{report.kind.upper()} answers"
        )
    envid = f"eai-{item.delivery_id}"
    if report.envelope_id and (report.envelope_id != envid or f"ENVID {envid}" not in recorded):
        raise Unverified(f"the DSN's ENVID is not delivery {item.delivery_id}'s")


def _mdn_error(text: str) -> ZamError:
    code = text.split("^", 1)[0].strip()
    if code in APPLICATION_ERROR_CONDITIONS:
        return application_error(code)
    return unexplained_error(text or "not read (MDN)")


def _one(report: Report, item: OutboxItem, r: RecipientReport) -> tuple[str, FollowUp | None]:
    """The journal words and the ZAM for one recipient."""
    if report.kind == "dsn":
        if r.accepted is None:
            return f"{_named(r.address)} {r.action} ({r.status}): not final, no ZAM", None
        if r.accepted:
            zam = zam_follow_up(item, "Z02", True, mailbox=r.address)
            return f"{_named(r.address)} {r.action} ({r.status})", zam
        code = smtp_code(r.status, r.diagnostic)
        zam = zam_follow_up(item, "Z02", False, error=smtp_error(code), mailbox=r.address)
        return f"{_named(r.address)} {r.action} ({r.status}, SMTPERRORCODE {code})", zam
    reader = r.final or r.address
    if r.accepted:
        zam = zam_follow_up(item, "Z03", True, mailbox=reader)
        return f"{_named(reader)} {r.action}", zam
    error = _mdn_error(r.diagnostic) if r.diagnostic else unexplained_error(f"MDN {r.action}")
    zam = zam_follow_up(item, "Z03", False, error=error, mailbox=reader)
    return f"{_named(reader)} {r.action} (error {error.code or 'unlisted'})", zam


def decide(report: Report, item: OutboxItem, attempts: tuple[str, ...]) -> Decision:
    """The meaning of ``report`` for delivery ``item`` (whose ``attempt`` details are
    ``attempts``). Raises :class:`Unverified` when it is not believed."""
    _verify(report, item, attempts)
    meant = intended(item)
    words: list[str] = []
    zams: list[FollowUp] = []
    for r in report.recipients:
        if r.address not in meant and r.final not in meant:
            words.append("a recipient this delivery was not meant for: ignored")
            continue
        text, zam = _one(report, item, r)
        words.append(
            text
            + (
                ""
                if zam is not None or "no ZAM" in text
                else ", no ZAM (not asked, or no business_acks)"
            )
        )
        if zam is not None:
            zams.append(zam)
    if not zams and not any(r.address in meant or r.final in meant for r in report.recipients):
        raise Unverified(f"the {report.kind.upper()} names none of the delivery's recipients")
    what = "delivery status" if report.kind == "dsn" else "disposition"
    return Decision(
        f"MSSanté {what} ({report.kind.upper()}) for {report.original_message_id}: "
        + "; ".join(words),
        tuple(zams),
    )
