"""The frozen data objects that flow between stages.

Touches: nothing.

listener --JournalEntry--> journal --IngestResult--> listener (ACK)
journal --StoredMessage--> pipeline --OutboxItem--> delivery --DeliveryResult--> journal

The destination contract: an :class:`OutboxItem` says what it carries (``media_type``,
one of the ``MEDIA_*`` constants), which route and mapping made it, and the message
facts a destination needs (:class:`MessageFacts`) without parsing the payload again; a
destination's config declares its pool width and time bounds (:class:`SendLimits`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "MEDIA_CDA_XML",
    "MEDIA_DICOM_REF",
    "MEDIA_FHIR_JSON",
    "MEDIA_HL7V2",
    "MEDIA_TYPES",
    "DeliveryResult",
    "FollowUp",
    "IngestResult",
    "JournalEntry",
    "NO_FACTS",
    "MessageFacts",
    "MessageStatus",
    "DeliveryStatus",
    "OutboxItem",
    "Recipient",
    "SendLimits",
    "StoredMessage",
]

MEDIA_HL7V2 = "application/hl7-v2"
"""An HL7 v2 message (ER7), as received."""
MEDIA_FHIR_JSON = "application/fhir+json"
"""A FHIR R4 resource (a mapping's Bundle), JSON in UTF-8."""
MEDIA_CDA_XML = "application/cda+xml"
"""A CDA R2 document, as received."""
MEDIA_DICOM_REF = "application/vnd.eai.dicom-ref+json"
"""A reference to a spooled DICOM instance (``dicom_router.reference.InstanceRef`` JSON:
spool name, data key, digests, the route's marking), never the instance itself."""
MEDIA_TYPES = (MEDIA_HL7V2, MEDIA_FHIR_JSON, MEDIA_CDA_XML, MEDIA_DICOM_REF)
"""Every media type an outbox item may carry."""

MessageStatus = Literal["received", "processed", "filtered", "rejected"]
DeliveryStatus = Literal["pending", "retrying", "delivered", "dead"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """What a listener hands to the journal before it acknowledges.

    ``dedup_key`` identifies a retransmission: when a message with the same key
    is already journaled, the journal returns its stored acknowledgement instead
    of storing a second copy. With ``dedup_by_content`` (HL7 v2: the key is
    listener, MSH-3, MSH-4, MSH-10), the key alone is not enough: only the same
    content is a retransmission (same lines, whatever their terminators: CR, LF
    or CRLF, blank lines and a missing or doubled last terminator aside). A
    different content under a known key is a sender reusing a control id: it is
    journaled as a new message, marked ``control id reused`` in its journey and
    reported as an anomaly of its sending facility (see ``IngestResult``).
    ``ack`` is the acknowledgement the listener will send once the commit is
    done; it is stored so that a retransmission gets the same answer.
    """

    listener: str
    payload: bytes
    received_at: datetime
    status: MessageStatus = "received"
    content_type: str = "hl7v2"
    peer: str = ""
    dedup_key: str | None = None
    dedup_by_content: bool = False
    control_id: str = ""
    message_type: str = ""
    sending_application: str = ""
    sending_facility: str = ""
    ack: bytes = b""
    reject_reason: str = ""
    content_size: int | None = None
    """The size of what the sender sent when ``payload`` only refers to it (a DICOM
    instance spooled to disk); None: ``len(payload)``."""
    answered: str = ""
    """The answer the listener sends when it is not an HL7 ACK (DICOM: ``0x0000``); its
    journey shows it where an ACK shows MSA-1."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The journal's answer to a listener: where the message is, and whether
    it was a retransmission (then ``stored_ack`` is what to send back).

    ``reuses`` is the id of the earlier message whose dedup key this new message
    reuses with another content (``dedup_by_content``); None otherwise."""

    message_id: int
    duplicate: bool = False
    stored_ack: bytes = b""
    reuses: int | None = None


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A journaled message as the pipeline reads it (payload decrypted)."""

    id: int
    listener: str
    payload: bytes
    received_at: datetime
    content_type: str
    control_id: str
    message_type: str


@dataclass(frozen=True, slots=True, repr=False)
class Recipient:
    """One participant a message names for its delivery (CI-SIS PRT: RCT recipient, SB
    sender, REPLY reply-to). Patient data when ``kind`` is ``patient``: never logged."""

    role: str
    """PRT-4.1: SB, RCT or REPLY."""
    kind: str
    """``patient``, ``professional``, ``organisation``, ``device`` or ``address``."""
    address: str = ""
    """The MSSante mail address ("" when none)."""
    identifier: str = ""
    identifier_system: str = ""
    identifier_type: str = ""

    def __repr__(self) -> str:
        return f"Recipient(role={self.role!r}, kind={self.kind!r})"


@dataclass(frozen=True, slots=True, repr=False)
class MessageFacts:
    """What the pipeline learnt of a message that a destination needs, so that no
    destination parses the payload again (stored sealed with the outbox row: the INS
    and the recipients are patient data).

    ``flags``: the routing facts (CI-SIS MetaDMPMSS ``DESTDMP``..., ``document_action``,
    PAM FR ZFA ``DMP_OPPOSITION``...; see :mod:`eai.content`), no patient data;
    ``recipients``: the participants (PRT) in message order; ``ins``/``ins_oid``: the
    patient's INS, set only when the identity is qualified (``""`` otherwise)."""

    flags: Mapping[str, str] = field(default_factory=dict)
    recipients: tuple[Recipient, ...] = ()
    ins: str = ""
    ins_oid: str = ""

    def __repr__(self) -> str:
        return (
            f"MessageFacts(flags={sorted(self.flags)}, recipients={len(self.recipients)}, "
            f"ins={'yes' if self.ins else 'no'})"
        )

    def is_empty(self) -> bool:
        return not (self.flags or self.recipients or self.ins)

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON (for the outbox row, sealed)."""
        data: dict[str, Any] = {}
        if self.flags:
            data["flags"] = dict(self.flags)
        if self.recipients:
            data["recipients"] = [
                [r.role, r.kind, r.address, r.identifier, r.identifier_system, r.identifier_type]
                for r in self.recipients
            ]
        if self.ins:
            data["ins"] = [self.ins, self.ins_oid]
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> MessageFacts:
        data = json.loads(raw.decode("utf-8"))
        ins = data.get("ins") or ["", ""]
        return cls(
            flags={str(k): str(v) for k, v in (data.get("flags") or {}).items()},
            recipients=tuple(Recipient(*map(str, r)) for r in data.get("recipients") or ()),
            ins=str(ins[0]),
            ins_oid=str(ins[1]),
        )


NO_FACTS = MessageFacts()
"""A message with no facts for its destinations."""


@dataclass(frozen=True, slots=True, repr=False)
class OutboxItem:
    """One delivery of one message to one destination: what it carries and why.

    ``payload`` is in ``media_type`` (a ``MEDIA_*`` constant); ``route`` is the route
    that made the delivery and ``mapping`` the mapping that converted it ("" when the
    payload is the message as received); ``facts`` are the message's (never parse the
    payload again for them)."""

    delivery_id: int
    message_id: int
    destination: str
    payload: bytes
    control_id: str
    patient_key: str
    attempts: int = 0
    media_type: str = MEDIA_HL7V2
    route: str = ""
    mapping: str = ""
    facts: MessageFacts = NO_FACTS
    return_to: str = ""
    """The destination the route names for the establishment's answers (``business_acks``:
    e.g. a ZAM business acknowledgement sent as a :class:`FollowUp`); "" = none."""

    def __repr__(self) -> str:
        return (
            f"OutboxItem(delivery_id={self.delivery_id}, destination={self.destination!r}, "
            f"media_type={self.media_type!r}, route={self.route!r}, attempts={self.attempts})"
        )


@dataclass(frozen=True, slots=True)
class SendLimits:
    """A destination's part of the contract the delivery worker relies on: how many
    sends may run at once (``connections``: 1 keeps the overall order; the worker
    always keeps each patient's), and the longest a connection (``connect_timeout``)
    and an answer (``response_timeout``) may take, in seconds; a send that gives up on
    either raises :class:`eai.errors.TransientDeliveryError`."""

    connections: int = 1
    connect_timeout: float = 10.0
    response_timeout: float = 30.0

    @property
    def longest_send(self) -> float:
        """The longest one send may take before it fails (a delivery lease must outlast it)."""
        return self.connect_timeout + self.response_timeout


@dataclass(frozen=True, slots=True, repr=False)
class FollowUp:
    """A message the engine must send because of a delivery's outcome (a business
    acknowledgement back to the establishment: ZAM^Z01 after a DMP publication...).

    Written as a new outbox row of the SOURCE message, in the same transaction as the
    outcome: ``payload`` sealed as its own, in ``media_type``, to ``destination`` (a
    declared destination: usually the item's ``return_to``), ordered with that patient's
    other deliveries there, retried and dead-lettered like any delivery. ``control_id``
    is the follow-up's own (HL7 v2: its MSH-10, which the peer's MSA-2 must repeat);
    ``kind`` names it in the source message's journey (``business_ack ZAM^Z01``)."""

    destination: str
    payload: bytes
    control_id: str
    kind: str
    media_type: str = MEDIA_HL7V2

    def __repr__(self) -> str:
        return (
            f"FollowUp(destination={self.destination!r}, kind={self.kind!r}, "
            f"control_id={self.control_id!r}, media_type={self.media_type!r})"
        )


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What a destination answered to a successful delivery; ``follow_ups``: what the
    engine must send because of it (see :class:`FollowUp`)."""

    detail: str = ""
    response: bytes = b""
    follow_ups: tuple[FollowUp, ...] = ()
