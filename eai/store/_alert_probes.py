"""What the alert rules measure in the journal, by index lookups only (run every few seconds).

Touches: DB (short reads).

Per destination, on ``ix_deliveries_queue`` (destination, status, message_id, id): the
active rows' count and oldest creation time (the first row of each active status), the
newest delivered rows' latest delivery time, the dead letters of a recent window. Per
establishment, rejected messages since a time: the first message of the window is found
on ``ix_messages_received_at``, then the rejected ones from it on ``ix_messages_status_id``.
No query reads the whole outbox or the whole journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from eai.store._schema import ACTIVE_DELIVERY, deliveries, destination_state, messages

__all__ = ["DestinationHealth", "destination_health", "rejected_by_facility"]

_RECENT_SUCCESSES = 50
"""Delivered rows looked at for the last success: rows are delivered per patient in
message order, so the latest delivery time is among the newest messages' rows."""


@dataclass(frozen=True, slots=True)
class DestinationHealth:
    name: str
    depth: int  # pending + retrying
    oldest_at: datetime | None  # creation of the oldest active row
    last_success_at: datetime | None
    dead_recent: int  # dead-lettered since the window's start
    paused: bool


def destination_health(
    engine: Engine, names: Sequence[str], dead_since: datetime
) -> list[DestinationHealth]:
    d = deliveries.c
    out: list[DestinationHealth] = []
    with engine.connect() as conn:
        paused = {
            n
            for n, p in conn.execute(select(destination_state.c.name, destination_state.c.paused))
            if p
        }
        for name in names:
            depth = conn.execute(
                select(func.count())
                .select_from(deliveries)
                .where(d.destination == name, d.status.in_(ACTIVE_DELIVERY))
            ).scalar_one()
            oldest: datetime | None = None
            if depth:
                for status in ACTIVE_DELIVERY:
                    at = conn.execute(
                        select(d.created_at)
                        .where(d.destination == name, d.status == status)
                        .order_by(d.message_id, d.id)
                        .limit(1)
                    ).scalar()
                    if at is not None and (oldest is None or at < oldest):
                        oldest = at
            newest = (
                select(d.delivered_at)
                .where(d.destination == name, d.status == "delivered")
                .order_by(d.message_id.desc(), d.id.desc())
                .limit(_RECENT_SUCCESSES)
                .subquery()
            )
            last = conn.execute(select(func.max(newest.c.delivered_at))).scalar()
            dead = conn.execute(
                select(func.count())
                .select_from(deliveries)
                .where(d.destination == name, d.status == "dead", d.next_attempt_at >= dead_since)
            ).scalar_one()
            out.append(DestinationHealth(name, depth, oldest, last, dead, name in paused))
    return out


def rejected_by_facility(engine: Engine, since: datetime) -> dict[str, int]:
    """Rejected messages per sending facility (MSH-4) received since ``since``."""
    m = messages.c
    with engine.connect() as conn:
        first = conn.execute(
            select(m.id).where(m.received_at >= since).order_by(m.received_at).limit(1)
        ).scalar()
        if first is None:
            return {}
        rows = conn.execute(
            select(m.sending_facility, func.count())
            .where(m.status == "rejected", m.id >= first)
            .group_by(m.sending_facility)
        ).all()
    return {facility or "-": n for facility, n in rows}
