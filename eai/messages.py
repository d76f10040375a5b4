"""The frozen data objects that flow between stages.

Touches: nothing.

listener --JournalEntry--> journal --IngestResult--> listener (ACK)
journal --StoredMessage--> pipeline --OutboxItem--> delivery --DeliveryResult--> journal
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

__all__ = [
    "DeliveryResult",
    "IngestResult",
    "JournalEntry",
    "MessageStatus",
    "DeliveryStatus",
    "OutboxItem",
    "StoredMessage",
]

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


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One delivery of one message to one destination."""

    delivery_id: int
    message_id: int
    destination: str
    payload: bytes
    control_id: str
    patient_key: str
    attempts: int = 0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What a destination answered to a successful delivery."""

    detail: str = ""
    response: bytes = b""
