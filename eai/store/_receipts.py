"""Receipts for earlier deliveries: what a delivery recorded, and each receipt journaled once.

Touches: DB (inside a transaction given by the caller; :func:`record_receipt` on the
writer thread).

A producer that reads receipts for deliveries already made (the MSSanté receipts reader:
delivery status and disposition notifications read back over IMAP) needs two things:

- :func:`delivery_record`: the source delivery as its destination saw it, and the details
  of its ``attempt`` events (where the destination wrote the Message-IDs and ENVID of its
  mails), to check that a receipt naming the delivery really answers one of its mails;
- :func:`record_receipt`: a ``receipt`` event on the source message and the follow-ups it
  makes (ZAM^Z02 / ZAM^Z03), in ONE transaction, at most once per receipt ``key`` (the
  receipt mail's identity): reading the same mail again, after a crash between this commit
  and the mail's move to its processed folder, adds nothing. The source delivery's row is
  locked first (``FOR UPDATE``; a no-op on SQLite, whose writer is single), so two nodes
  reading the same mailbox cannot both record it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select

from eai.errors import NotFound
from eai.messages import FollowUp, OutboxItem
from eai.store._crypto import Cipher
from eai.store._follow_ups import delivery_item, insert_follow_ups
from eai.store._schema import deliveries, events

__all__ = ["RECEIPT_EVENT", "DeliveryRecord", "delivery_record", "record_receipt"]

RECEIPT_EVENT = "receipt"
"""The kind of a receipt's event in the source message's journey."""


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A delivery as its destination was handed it, and what its attempts recorded."""

    item: OutboxItem
    attempts: tuple[str, ...]
    """The details of its ``attempt`` events, oldest first."""
    status: str
    """Its status now (``delivered`` and ``dead`` are final; ``retrying``, ``pending``...:
    a receipt may come before the attempt that sent its mail is recorded)."""


def delivery_record(conn: Connection, cipher: Cipher, delivery_id: int) -> DeliveryRecord:
    """Delivery ``delivery_id`` and its attempts' details. NotFound when no such delivery."""
    item = delivery_item(conn, cipher, delivery_id)
    status = conn.execute(
        select(deliveries.c.status).where(deliveries.c.id == delivery_id)
    ).scalar_one()
    details = conn.execute(
        select(events.c.detail)
        .where(events.c.delivery_id == delivery_id, events.c.kind == "attempt")
        .order_by(events.c.id)
    ).scalars()
    return DeliveryRecord(item, tuple(details), str(status))


def _marker(key: str) -> str:
    return f" [receipt {key}]"


def record_receipt(
    conn: Connection,
    cipher: Cipher,
    delivery_id: int,
    key: str,
    detail: str,
    follow_ups: Sequence[FollowUp],
    now: datetime,
) -> list[int] | None:
    """Journals receipt ``key`` of delivery ``delivery_id`` (``detail``: no patient data)
    and writes its follow-ups; returns their delivery ids, or None when this receipt was
    already recorded (nothing written). NotFound when no such delivery."""
    source = conn.execute(
        select(deliveries.c.id, deliveries.c.message_id)
        .where(deliveries.c.id == delivery_id)
        .with_for_update()
    ).first()
    if source is None:
        raise NotFound(f"no delivery with id {delivery_id}")
    marker = _marker(key)
    seen = conn.execute(
        select(events.c.detail).where(
            events.c.delivery_id == delivery_id, events.c.kind == RECEIPT_EVENT
        )
    ).scalars()
    if any(d.endswith(marker) for d in seen):
        return None
    conn.execute(
        insert(events).values(
            at=now,
            message_id=source.message_id,
            delivery_id=delivery_id,
            kind=RECEIPT_EVENT,
            detail=detail + marker,
        )
    )
    return insert_follow_ups(conn, cipher, [(delivery_id, follow_ups, detail)], now)
