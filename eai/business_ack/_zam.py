"""Build the CI-SIS business acknowledgements ZAM^Z01/Z02/Z03 (HL7 2.6) of a source message.

Touches: nothing.

IG "Transmission de documents CDA en HL7 v2", ``profils-messages.md`` (structure ZAM_Z01:
MSH, EVN, OBX, [OBX], [ERR]) and the ANS samples ``zam_business_ack_dmp.er7`` /
``zam_business_ack_mss.er7``:

- MSH: the source's MSH-5/6 as sender, its MSH-3/4 as receiver (the platform answers
  the application that sent the document), MSH-9 ``ZAM^Z0n^ZAM_Z01``, MSH-11 the
  source's, MSH-12 ``2.6``, MSH-17 ``FRA``, MSH-18 the source's character set (``UNICODE
  UTF-8`` when it gave none), MSH-21 ``2.1^CISIS_CDA_HL7_V2``;
- EVN-2: when the outcome happened;
- OBX 1 (CWE): ``ACK_RECEPTION_DMP`` (Z01), ``ACK_RECEPTION_MSS`` (Z02) or
  ``ACK_LECTURE_MSS`` (Z03) ``^label^AckMetierZAM``, OBX-4 = the source's MSH-10, OBX-5
  ``Y|N^^expandedYes-NoIndicator``, OBX-11 ``F``;
- OBX 2 (XTN, Z02/Z03): ``DESTINATAIRE_MSS`` / ``LECTEUR_MSS``, OBX-4 the mailbox owner's
  identifier (optional), OBX-5 ``^^X.400^<address>``;
- ERR when OBX-5 is N: ERR-3 ``207^Application internal error^messageErrorCondition``,
  ERR-4 ``E``, ERR-5 ``<code>^<label>^<system>`` (DMPERRORCODE, SMTPERRORCODE,
  applicationErrorCondition); a failure without a code from those tables carries its
  reason in ERR-8 (user message) instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from eai.business_ack._codes import (
    ACK_METIER_ZAM,
    ACK_METIER_ZAM_SYSTEM,
    APPLICATION_ERROR_CONDITIONS,
    APPLICATION_ERROR_SYSTEM,
    DMP_ERROR_SYSTEM,
    MESSAGE_ERROR_CONDITIONS,
    MESSAGE_ERROR_SYSTEM,
    SMTP_ERROR_CODES,
    SMTP_ERROR_SYSTEM,
    YES_NO_SYSTEM,
)
from eai.hl7 import escape, read_header
from eai.messages import MEDIA_HL7V2, FollowUp, MessageFacts, OutboxItem

__all__ = [
    "ZAM_EVENTS",
    "Zam",
    "ZamError",
    "ZamEvent",
    "application_error",
    "asks_for",
    "build_zam",
    "dmp_error",
    "new_control_id",
    "smtp_error",
    "unexplained_error",
    "zam_follow_up",
]

ZamEvent = Literal["Z01", "Z02", "Z03"]
ZAM_EVENTS: Final[dict[str, tuple[str, str, str]]] = {
    "Z01": ("ACK_RECEPTION_DMP", "", "ACK_RECEPTION"),
    "Z02": ("ACK_RECEPTION_MSS", "DESTINATAIRE_MSS", "ACK_RECEPTION"),
    "Z03": ("ACK_LECTURE_MSS", "LECTEUR_MSS", "ACK_LECTURE_MSS"),
}
"""Per event: the status OBX code, the mailbox OBX code ("" = none), and the MetaDMPMSS
flag of the source message that asks for it (``meta-dmp-mss.md``)."""

VERSION: Final = "2.6"
PROFILE: Final = ("2.1", "CISIS_CDA_HL7_V2")
_TEXT_MAX = 199  # CWE.2 / ERR-8 kept short (HL7 2.6 ST/TX lengths)


@dataclass(frozen=True, slots=True)
class ZamError:
    """The ERR of a negative ZAM: ERR-5 ``code^label^system``, or, with no ``code``, the
    reason ``text`` in ERR-8 (no patient data: it goes to the establishment)."""

    code: str = ""
    label: str = ""
    system: str = ""
    text: str = ""


def dmp_error(code: str, label: str = "") -> ZamError:
    """A DMP error (a RegistryError's ``errorCode`` and its text) for a ZAM^Z01."""
    return ZamError(code, label or code, DMP_ERROR_SYSTEM)


def smtp_error(code: str | int, text: str = "") -> ZamError:
    """An SMTP reply code for a ZAM^Z02: labelled from SMTPERRORCODE; a code the table does
    not list keeps ``text`` (or ``SMTP <code>``) as its label."""
    key = str(code).strip()
    return ZamError(key, SMTP_ERROR_CODES.get(key) or text or f"SMTP {key}", SMTP_ERROR_SYSTEM)


def application_error(code: str | int) -> ZamError:
    """A receiver's application error (900-905) for a ZAM^Z03."""
    key = str(code).strip()
    label = APPLICATION_ERROR_CONDITIONS.get(key)
    if label is None:
        raise ValueError(f"{key!r} is not in the applicationErrorCondition table")
    return ZamError(key, label, APPLICATION_ERROR_SYSTEM)


def unexplained_error(text: str) -> ZamError:
    """A failure with no code in the IG's tables: its reason goes in ERR-8."""
    return ZamError(text=text)


@dataclass(frozen=True, slots=True, repr=False)
class Zam:
    """One built business acknowledgement: the encoded message and its MSH-10."""

    payload: bytes
    control_id: str
    event: str

    @property
    def kind(self) -> str:
        """How the journey names it: ``business_ack ZAM^Z01``."""
        return f"business_ack ZAM^{self.event}"

    def __repr__(self) -> str:
        return f"Zam(event={self.event!r}, control_id={self.control_id!r})"


def asks_for(facts: MessageFacts, event: ZamEvent) -> bool:
    """Whether the source message asked for this acknowledgement (``ACK_RECEPTION`` = Y
    for Z01/Z02, ``ACK_LECTURE_MSS`` = Y for Z03)."""
    return facts.flags.get(ZAM_EVENTS[event][2]) == "Y"


def new_control_id() -> str:
    """A fresh MSH-10 (20 characters): unique across restarts and journals, so that an
    establishment never takes a new ZAM for a retransmission of an old one."""
    return "ZAM" + uuid.uuid4().hex[:17].upper()


def _msh_fields(source: bytes) -> tuple[list[str], str, str, str]:
    """The source's raw MSH fields (as sent: escaped in its own delimiters), its field
    separator, encoding characters and codec. InputError when it is no HL7 v2 message."""
    header = read_header(source)
    text = source.decode(header.codec, "replace")
    line = text.replace("\n", "\r").split("\r", 1)[0]
    fields = line.split(header.field_sep)
    return fields + [""] * (19 - len(fields)), header.field_sep, header.encoding_chars, header.codec


def build_zam(
    source: bytes,
    event: ZamEvent,
    accepted: bool,
    *,
    error: ZamError | None = None,
    mailbox: str = "",
    mailbox_id: str = "",
    control_id: str | None = None,
    now: datetime | None = None,
) -> Zam:
    """The ZAM^``event``^ZAM_Z01 answering ``source`` (the ORU/MDM as received).

    ``accepted``: OBX-5 Y, else N with an ERR (``error``: its ERR-5 or ERR-8; none: ERR-3
    only). ``mailbox`` (Z02: the recipient, Z03: the reader; required for them) and its
    owner's ``mailbox_id`` (OBX-4, optional) make the second OBX. ``control_id``: the
    ZAM's MSH-10 (default: :func:`new_control_id`); ``now`` (local time): MSH-7 and EVN-2.
    Raises InputError when ``source`` is no readable HL7 v2 message, ValueError when a
    Z02/Z03 has no mailbox."""
    status_code, mailbox_code, _ = ZAM_EVENTS[event]
    if mailbox_code and not mailbox:
        raise ValueError(f"a ZAM^{event} names the mailbox ({mailbox_code})")
    msh, fs, enc, codec = _msh_fields(source)
    comp = enc[0]

    def esc(value: str) -> str:
        return escape(value, enc, fs)

    def coded(code: str, label: str, system: str) -> str:
        return comp.join((esc(code), esc(label[:_TEXT_MAX]), esc(system)))

    stamp = (now or datetime.now()).strftime("%Y%m%d%H%M%S")
    ident = control_id or new_control_id()
    segments = [
        fs.join(
            [
                "MSH",
                enc,
                msh[4],
                msh[5],
                msh[2],
                msh[3],
                stamp,
                "",
                comp.join(("ZAM", event, "ZAM_Z01")),
                esc(ident),
                msh[10] or "P",
                VERSION,
                "",
                "",
                "",
                "",
                "FRA",
                msh[17] or "UNICODE UTF-8",
                "",
                "",
                comp.join(PROFILE),
            ]
        ),
        fs.join(["EVN", "", stamp]),
        fs.join(
            [
                "OBX",
                "1",
                "CWE",
                coded(status_code, ACK_METIER_ZAM[status_code], ACK_METIER_ZAM_SYSTEM),
                msh[9],  # the source's MSH-10, as sent
                comp.join(("Y" if accepted else "N", "", YES_NO_SYSTEM)),
                *[""] * 5,
                "F",
                "",
            ]
        ),
    ]
    if mailbox_code:
        segments.append(
            fs.join(
                [
                    "OBX",
                    "2",
                    "XTN",
                    coded(mailbox_code, ACK_METIER_ZAM[mailbox_code], ACK_METIER_ZAM_SYSTEM),
                    esc(mailbox_id),
                    comp.join(("", "", "X.400", esc(mailbox))),
                    *[""] * 5,
                    "F",
                    "",
                ]
            )
        )
    if not accepted:
        segments.append(_err(error or ZamError(), fs, comp, esc))
    return Zam(("\r".join(segments) + "\r").encode(codec, "replace"), ident, event)


def _err(error: ZamError, fs: str, comp: str, esc: Callable[[str], str]) -> str:
    hl7_error = comp.join(("207", MESSAGE_ERROR_CONDITIONS["207"], MESSAGE_ERROR_SYSTEM))
    fields = ["ERR", "", "", hl7_error, "E"]
    if error.code:
        fields.append(comp.join((esc(error.code), esc(error.label[:_TEXT_MAX]), esc(error.system))))
    elif error.text:
        fields += ["", "", "", esc(error.text[:_TEXT_MAX])]
    return fs.join(fields)


def zam_follow_up(
    item: OutboxItem,
    event: ZamEvent,
    accepted: bool,
    *,
    error: ZamError | None = None,
    mailbox: str = "",
    mailbox_id: str = "",
    now: datetime | None = None,
) -> FollowUp | None:
    """The ZAM of ``item``'s outcome as a follow-up to its ``return_to``; None when the
    message did not ask for it (:func:`asks_for`), its route names no return destination,
    or it is not an HL7 v2 message (a CDA alone has no MSH to answer)."""
    if not item.return_to or item.media_type != MEDIA_HL7V2 or not asks_for(item.facts, event):
        return None
    zam = build_zam(
        item.payload,
        event,
        accepted,
        error=error,
        mailbox=mailbox,
        mailbox_id=mailbox_id,
        now=now,
    )
    return FollowUp(item.return_to, zam.payload, zam.control_id, zam.kind, MEDIA_HL7V2)
