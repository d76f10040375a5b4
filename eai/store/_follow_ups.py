"""Follow-up messages: the outbox rows a delivery's outcome (or a later receipt) adds.

Touches: DB (every function runs inside a transaction given by the caller, on the
writer thread).

A follow-up (:class:`eai.messages.FollowUp`, e.g. a ZAM business acknowledgement after a
DMP publication) becomes a new outbox row of the SOURCE delivery's message: its own
sealed payload, media type and control id, ``follow_up_of`` = the source delivery, the
source's patient key (so it is ordered with that patient's other deliveries to its
destination) and route; it is then claimed, retried and dead-lettered like any
delivery. Each gets a ``follow_up`` event naming its kind in the message's journey.
:func:`record_outcomes <eai.store.record_outcomes>` writes those of an outcome in the
outcome's transaction; :func:`add_follow_ups` is for a producer that is not a
destination (a receipts reader correlating a mail receipt with its delivery), and
:func:`delivery_item` gives it the source delivery as a destination saw it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select

from eai.content import media_type_of
from eai.errors import NotFound
from eai.messages import NO_FACTS, FollowUp, MessageFacts, OutboxItem
from eai.store._bodies import DELIVERY_PAYLOAD, MESSAGE_PAYLOAD, set_aside, store_delivery_bodies
from eai.store._crypto import Cipher
from eai.store._schema import deliveries, events, messages

__all__ = ["add_follow_ups", "delivery_item", "insert_follow_ups"]

_SOURCES = select(
    deliveries.c.id,
    deliveries.c.message_id,
    deliveries.c.patient_key,
    deliveries.c.route,
).where(deliveries.c.id.in_(bindparam("b_ids", expanding=True)))
_INSERT = insert(deliveries).returning(deliveries.c.id, sort_by_parameter_order=True)


def insert_follow_ups(
    conn: Connection,
    cipher: Cipher,
    made: Sequence[tuple[int, Sequence[FollowUp], str]],
    now: datetime,
) -> list[int]:
    """Writes the follow-ups of each (source delivery id, follow-ups, why) and their
    ``follow_up`` events; returns the new delivery ids in order. A follow-up without a
    destination (or of an unknown source) is not written: a ``warning`` event says so,
    and the outcome that made it is still recorded."""
    wanted = [(src, f, why) for src, fs, why in made for f in fs]
    if not wanted:
        return []
    sources = {
        r.id: r for r in conn.execute(_SOURCES, {"b_ids": sorted({s for s, _, _ in wanted})})
    }
    rows: list[dict[str, object]] = []
    named: list[tuple[int, int, FollowUp, str]] = []
    warnings: list[dict[str, object]] = []
    for src, f, why in wanted:
        source = sources.get(src)
        if source is None or not f.destination:
            if source is not None:
                warnings.append(
                    {
                        "at": now,
                        "message_id": source.message_id,
                        "delivery_id": src,
                        "kind": "warning",
                        "detail": f"{f.kind} not sent: no destination for it "
                        "(routes.yaml business_acks)",
                    }
                )
            continue
        rows.append(
            {
                "message_id": source.message_id,
                "destination": f.destination,
                "route": source.route,
                "patient_key": source.patient_key,
                "control_id": f.control_id,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
                "last_error": "",
                "payload": cipher.seal(f.payload),
                "media_type": f.media_type,
                "follow_up_of": src,
            }
        )
        named.append((source.message_id, src, f, why))
    aside = set_aside(rows)
    created: list[int] = list(conn.execute(_INSERT, rows).scalars()) if rows else []
    store_delivery_bodies(conn, created, aside)
    ev = warnings + [
        {
            "at": now,
            "message_id": mid,
            "delivery_id": new_id,
            "kind": "follow_up",
            "detail": f"{f.kind} to {f.destination}, control id {f.control_id} "
            f"(of delivery {src}{', ' + why if why else ''})",
        }
        for new_id, (mid, src, f, why) in zip(created, named, strict=True)
    ]
    if ev:
        conn.execute(insert(events), ev)
    return created


def add_follow_ups(
    conn: Connection,
    cipher: Cipher,
    delivery_id: int,
    follow_ups: Sequence[FollowUp],
    now: datetime,
    *,
    why: str = "",
) -> list[int]:
    """Adds follow-ups to the message of delivery ``delivery_id`` (e.g. a ZAM^Z02 when the
    delivery status notification of a mail comes back); ``why`` goes in their events
    (no patient data). Run it on the writer: ``store.writer.run(lambda c:
    add_follow_ups(c, store.cipher, ...))``. NotFound when no such delivery."""
    if conn.execute(_SOURCES, {"b_ids": [delivery_id]}).first() is None:
        raise NotFound(f"no delivery with id {delivery_id}")
    return insert_follow_ups(conn, cipher, [(delivery_id, follow_ups, why)], now)


def delivery_item(conn: Connection, cipher: Cipher, delivery_id: int) -> OutboxItem:
    """Delivery ``delivery_id`` as its destination was handed it (payload and facts
    opened, ``return_to``), to build a follow-up from it outside a send. NotFound when
    no such delivery."""
    r = conn.execute(
        select(
            deliveries,
            DELIVERY_PAYLOAD.label("own_payload"),
            MESSAGE_PAYLOAD.label("message_payload"),
            messages.c.content_type,
        )
        .join(messages, messages.c.id == deliveries.c.message_id)
        .where(deliveries.c.id == delivery_id)
    ).first()
    if r is None:
        raise NotFound(f"no delivery with id {delivery_id}")
    facts = NO_FACTS
    if r.facts is not None:
        facts = MessageFacts.from_json(cipher.open(r.facts))
    return OutboxItem(
        r.id,
        r.message_id,
        r.destination,
        cipher.open(r.own_payload if r.own_payload is not None else r.message_payload),
        r.control_id,
        r.patient_key,
        r.attempts,
        media_type=r.media_type or media_type_of(r.content_type),
        route=r.route,
        mapping=r.mapping or "",
        facts=facts,
        return_to=r.return_to or "",
    )
