"""The console's message search and flow rates: ids from indexes, newest first, keyset pages.

Touches: DB (short reads of its own; safe while the engine runs).

:func:`search_message_ids` returns one page of ids; the rows themselves are then
read with :func:`eai.store.list_messages` (``ids=``), the CLI's listing, so the
console and ``eai messages list`` show the same thing. No payload is read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, exists, func, literal_column, select

from eai.store._crypto import Cipher
from eai.store._journal import utcnow
from eai.store._schema import ACTIVE_DELIVERY, deliveries, destination_state, messages, patient_ids

__all__ = ["DestinationRow", "MessageQuery", "destination_rows", "flow_rates", "search_message_ids"]

_WAITING = (*ACTIVE_DELIVERY, "held", "dead")


def _no_index(column: ColumnElement[str]) -> ColumnElement[str]:
    """``column || ''``: the same value, but no index delivers it sorted. Grouped by the
    column itself, SQLite's planner walks a whole index that gives that order
    (ix_messages_listener, the outbox's ix_deliveries_queue) rather than the few recent
    rows the time range of ix_messages_received_at gives."""
    return column.concat(literal_column("''")).label(column.name)


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
    listener = _no_index(messages.c.listener)
    with engine.connect() as conn:
        rows = conn.execute(
            select(listener, messages.c.status, func.count())
            .where(messages.c.received_at >= since)
            .group_by(listener, messages.c.status)
        ).all()
    for listener, status, n in rows:
        out.setdefault(listener, {})[status] = n
    return out


@dataclass(frozen=True)
class DestinationRow:
    """A destination on the console's overview: its queue now, and its recent work."""

    destination: str
    state: str  # active, paused
    depth: int  # pending + retrying
    retrying: int
    held: int
    dead: int
    oldest_pending_age_s: float | None
    delivered_recent: int  # deliveries of the messages received since ``since``
    failed_recent: int  # ... that are dead or retrying


def destination_rows(engine: Engine, names: Sequence[str], since: datetime) -> list[DestinationRow]:
    """The overview's destinations, from index seeks only (``eai queue list`` counts every
    delivery ever made, a scan of the outbox: too slow for a page refreshed every few
    seconds over millions of rows): the waiting states per destination on
    ``ix_deliveries_queue``, and the recent outcomes through the messages received since
    ``since`` (``ix_messages_received_at``, then ``ix_deliveries_message``)."""
    now = utcnow()
    with engine.connect() as conn:
        waiting = conn.execute(
            select(deliveries.c.destination, deliveries.c.status, func.count())
            .where(deliveries.c.destination.in_(list(names)), deliveries.c.status.in_(_WAITING))
            .group_by(deliveries.c.destination, deliveries.c.status)
        ).all()
        oldest = dict(
            conn.execute(
                select(deliveries.c.destination, func.min(deliveries.c.created_at))
                .where(
                    deliveries.c.destination.in_(list(names)),
                    deliveries.c.status.in_(ACTIVE_DELIVERY),
                )
                .group_by(deliveries.c.destination)
            ).all()
        )
        dest = _no_index(deliveries.c.destination)
        recent = conn.execute(
            select(dest, deliveries.c.status, func.count())
            .join(messages, messages.c.id == deliveries.c.message_id)
            .where(messages.c.received_at >= since)
            .group_by(dest, deliveries.c.status)
        ).all()
        paused = dict(
            conn.execute(select(destination_state.c.name, destination_state.c.paused)).all()
        )
    counts: dict[str, dict[str, int]] = {}
    for dest, status, n in waiting:
        counts.setdefault(dest, {})[status] = n
    done: dict[str, dict[str, int]] = {}
    for dest, status, n in recent:
        done.setdefault(dest, {})[status] = n
    rows = []
    for name in names:
        c, d, o = counts.get(name, {}), done.get(name, {}), oldest.get(name)
        rows.append(
            DestinationRow(
                name,
                "paused" if paused.get(name) else "active",
                c.get("pending", 0) + c.get("retrying", 0),
                c.get("retrying", 0),
                c.get("held", 0),
                c.get("dead", 0),
                None if o is None else round((now - o).total_seconds(), 1),
                d.get("delivered", 0),
                d.get("dead", 0) + d.get("retrying", 0),
            )
        )
    return rows
