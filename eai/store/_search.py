"""The console's message search and flow rates: ids from indexes, newest first, keyset pages.

Touches: DB (short reads of its own; safe while the engine runs).

:func:`search_message_ids` returns one page of ids; the rows themselves are then
read with :func:`eai.store.list_messages` (``ids=``), the CLI's listing, so the
console and ``eai messages list`` show the same thing. No payload is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, exists, func, select

from eai.store._crypto import Cipher
from eai.store._schema import deliveries, messages, patient_ids

__all__ = ["MessageQuery", "flow_rates", "search_message_ids"]


@dataclass(frozen=True)
class MessageQuery:
    """Every filter is optional; those given must all match."""

    since: datetime | None = None
    until: datetime | None = None
    listener: str = ""
    facility: str = ""  # MSH-4, the sending establishment
    message_type: str = ""  # ADT^A01, or ADT (every trigger)
    status: str = ""
    control_id: str = ""
    patient: str = ""  # in clear here; only its keyed hash goes to the database
    patient_hash: str = ""  # or that hash itself (cipher.hash_id), e.g. in a next-page link
    destination: str = ""
    delivery_status: str = ""


def search_message_ids(
    engine: Engine, cipher: Cipher, q: MessageQuery, *, before: int | None = None, limit: int = 50
) -> list[int]:
    """Ids of the messages matching ``q``, newest first, below ``before`` (the last id of
    the page before), at most ``limit``: each filter is an indexed column (control id,
    listener, type, status, time) or an indexed join (patient id hash, deliveries by
    message), and the order is the primary key's."""
    s = select(messages.c.id)
    if q.since is not None:
        s = s.where(messages.c.received_at >= q.since)
    if q.until is not None:
        s = s.where(messages.c.received_at <= q.until)
    if q.listener:
        s = s.where(messages.c.listener == q.listener)
    if q.facility:
        s = s.where(messages.c.sending_facility == q.facility)
    if q.message_type:
        t = q.message_type.strip()
        s = s.where((messages.c.message_type == t) | messages.c.message_type.like(t + "^%"))
    if q.status:
        s = s.where(messages.c.status == q.status)
    if q.control_id:
        s = s.where(messages.c.control_id == q.control_id.strip())
    patient_hash = cipher.hash_id(q.patient) if q.patient else q.patient_hash
    if patient_hash:
        s = s.where(
            messages.c.id.in_(
                select(patient_ids.c.message_id).where(patient_ids.c.id_hash == patient_hash)
            )
        )
    if q.destination or q.delivery_status:
        d = select(deliveries.c.id).where(deliveries.c.message_id == messages.c.id)
        if q.destination:
            d = d.where(deliveries.c.destination == q.destination)
        if q.delivery_status:
            d = d.where(deliveries.c.status == q.delivery_status)
        s = s.where(exists(d))
    if before is not None:
        s = s.where(messages.c.id < before)
    s = s.order_by(messages.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(s)]


def flow_rates(engine: Engine, since: datetime) -> dict[str, dict[str, int]]:
    """Per listener, messages received since ``since`` by status (an index range on
    the reception time)."""
    out: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        rows = conn.execute(
            select(messages.c.listener, messages.c.status, func.count())
            .where(messages.c.received_at >= since)
            .group_by(messages.c.listener, messages.c.status)
        ).all()
    for listener, status, n in rows:
        out.setdefault(listener, {})[status] = n
    return out
