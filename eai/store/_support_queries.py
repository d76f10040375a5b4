"""Support queries beyond the message listing: queues, replay selection, settlement.

Touches: DB (short reads of its own; safe while the engine runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from eai.errors import NotFound
from eai.store._bodies import MESSAGE_PAYLOAD
from eai.store._claims import CLAIMED_COLUMNS, ClaimedMessage, claimed_messages
from eai.store._journal import utcnow
from eai.store._schema import ACTIVE_DELIVERY, deliveries, destination_state, messages

__all__ = [
    "QueueView",
    "content_deliveries",
    "messages_for_replay",
    "queue_stats",
    "settlement",
]


def messages_for_replay(engine: Engine, ids: Sequence[int]) -> list[ClaimedMessage]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(*CLAIMED_COLUMNS).where(messages.c.id.in_(list(ids))).order_by(messages.c.id)
        ).all()
    found = {r.id for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"no message with id {missing[0]}")
    return claimed_messages(rows)


@dataclass(frozen=True)
class QueueView:
    destination: str
    state: str
    depth: int
    retrying: int
    dead: int
    delivered: int
    oldest_pending_age_s: float | None
    held: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "destination": self.destination,
            "state": self.state,
            "depth": self.depth,
            "retrying": self.retrying,
            "dead": self.dead,
            "held": self.held,
            "delivered": self.delivered,
            "oldest_pending_age_s": self.oldest_pending_age_s,
        }


def queue_stats(engine: Engine, names: Sequence[str]) -> list[QueueView]:
    now = utcnow()
    with engine.connect() as conn:
        counts = conn.execute(
            select(deliveries.c.destination, deliveries.c.status, func.count()).group_by(
                deliveries.c.destination, deliveries.c.status
            )
        ).all()
        oldest = dict(
            conn.execute(
                select(deliveries.c.destination, func.min(deliveries.c.created_at))
                .where(deliveries.c.status.in_(ACTIVE_DELIVERY))
                .group_by(deliveries.c.destination)
            ).all()
        )
        paused = dict(
            conn.execute(select(destination_state.c.name, destination_state.c.paused)).all()
        )
    per: dict[str, dict[str, int]] = {}
    for dest, st, n in counts:
        per.setdefault(dest, {})[st] = n
    out = []
    for name in list(names) + sorted(set(per) - set(names)):
        c = per.get(name, {})
        o = oldest.get(name)
        out.append(
            QueueView(
                name,
                "paused" if paused.get(name) else ("active" if name in names else "unconfigured"),
                c.get("pending", 0) + c.get("retrying", 0),
                c.get("retrying", 0),
                c.get("dead", 0),
                c.get("delivered", 0),
                None if o is None else round((now - o).total_seconds(), 1),
                c.get("held", 0),
            )
        )
    return out


def settlement(engine: Engine, dedup_keys: Sequence[str], before: datetime) -> dict[str, bool]:
    """For each journaled ``dedup_key``: True when its message was settled before ``before``.

    Settled: ``filtered`` (at ``processed_at``), or ``processed`` with every
    delivery ``delivered`` (at the last ``delivered_at``). Keys of no message are
    absent from the result. Used by the DICOM spool retention.
    """
    out: dict[str, bool] = {}
    keys = list(dict.fromkeys(dedup_keys))
    with engine.connect() as conn:
        for start in range(0, len(keys), 500):
            rows = conn.execute(
                select(
                    messages.c.id, messages.c.dedup_key, messages.c.status, messages.c.processed_at
                ).where(messages.c.dedup_key.in_(keys[start : start + 500]))
            ).all()
            processed = [r.id for r in rows if r.status == "processed"]
            done: dict[int, list[tuple[str, datetime | None]]] = {i: [] for i in processed}
            if processed:
                for d in conn.execute(
                    select(
                        deliveries.c.message_id, deliveries.c.status, deliveries.c.delivered_at
                    ).where(deliveries.c.message_id.in_(processed))
                ).all():
                    done[d.message_id].append((d.status, d.delivered_at))
            for r in rows:
                if r.status == "filtered":
                    out[r.dedup_key] = r.processed_at is not None and r.processed_at < before
                elif r.status == "processed":
                    dl = done[r.id]
                    out[r.dedup_key] = bool(dl) and all(
                        st == "delivered" and at is not None and at < before for st, at in dl
                    )
                else:
                    out[r.dedup_key] = False
    return out


def content_deliveries(
    engine: Engine, content_type: str, since: datetime | None = None
) -> list[tuple[str, str, int, bytes]]:
    """(destination, status, message id, sealed message payload) of the latest delivery
    per message and destination, for the messages of ``content_type`` (``eai dicom queue``)."""
    latest = (
        select(func.max(deliveries.c.id))
        .join(messages, messages.c.id == deliveries.c.message_id)
        .where(messages.c.content_type == content_type)
        .group_by(deliveries.c.message_id, deliveries.c.destination)
    )
    if since is not None:
        latest = latest.where(messages.c.received_at >= since)
    q = (
        select(
            deliveries.c.destination,
            deliveries.c.status,
            deliveries.c.message_id,
            MESSAGE_PAYLOAD.label("payload"),
        )
        .join(messages, messages.c.id == deliveries.c.message_id)
        .where(deliveries.c.id.in_(latest))
        .order_by(deliveries.c.message_id)
    )
    with engine.connect() as conn:
        return [(r[0], r[1], r[2], r[3]) for r in conn.execute(q).all()]
