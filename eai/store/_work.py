"""The pipeline's and delivery workers' reads and writes: claims with leases, outcomes.

Touches: DB (every function runs inside a transaction given by the caller,
on the writer thread).

Claims use leases (owner + expiry) so several engine nodes can share one
PostgreSQL: on PostgreSQL a claim also takes a transaction-scoped advisory
lock per queue, which serialises claims across nodes; on SQLite the single
writer thread already does.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, func, insert, or_, select, text, update

from eai.store._schema import (
    ACTIVE_DELIVERY,
    deliveries,
    destination_state,
    events,
    messages,
    patient_ids,
)

__all__ = [
    "ClaimedDelivery",
    "ClaimedMessage",
    "DeliveryOutcome",
    "MessagePlan",
    "PlannedDelivery",
    "apply_plans",
    "claim_deliveries",
    "claim_messages",
    "clear_leases",
    "is_paused",
    "record_outcomes",
]


def _advisory_lock(conn: Connection, name: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(name.encode())})


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    id: int
    listener: str
    received_at: datetime
    content_type: str
    control_id: str
    message_type: str
    sealed_payload: bytes


def claim_messages(
    conn: Connection, owner: str, now: datetime, lease: float, limit: int
) -> list[ClaimedMessage]:
    """Leases the oldest ``received`` messages not leased by a live owner."""
    _advisory_lock(conn, "eai:pipeline")
    rows = conn.execute(
        select(
            messages.c.id,
            messages.c.listener,
            messages.c.received_at,
            messages.c.content_type,
            messages.c.control_id,
            messages.c.message_type,
            messages.c.payload,
        )
        .where(
            messages.c.status == "received",
            or_(messages.c.lease_until.is_(None), messages.c.lease_until < now),
        )
        .order_by(messages.c.id)
        .limit(limit)
    ).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    conn.execute(
        update(messages)
        .where(messages.c.id.in_(ids))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease))
    )
    return [
        ClaimedMessage(
            r.id, r.listener, r.received_at, r.content_type, r.control_id, r.message_type, r.payload
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    destination: str
    route: str


@dataclass(frozen=True, slots=True)
class MessagePlan:
    """What the pipeline decided for one message (no patient data in clear)."""

    message_id: int
    status: str  # processed | filtered | rejected
    routes: tuple[str, ...] = ()
    deliveries: tuple[PlannedDelivery, ...] = ()
    patient_key: str = ""
    patient_id_hashes: tuple[str, ...] = ()
    control_id: str = ""
    reason: str = ""
    payload: bytes | None = None  # sealed; None = the message as received


def apply_plans(
    conn: Connection,
    plans: Sequence[MessagePlan],
    now: datetime,
    *,
    replay: bool = False,
    only_received: bool = True,
) -> list[int]:
    """Writes the outbox rows and the new status of each planned message.

    With ``only_received`` a plan applies only if its message is still
    ``received`` (a lease that expired mid-way cannot route a message twice).
    Returns the ids of the deliveries created.
    """
    created: list[int] = []
    ev: list[dict[str, object]] = []
    for p in plans:
        cond = [messages.c.id == p.message_id]
        if only_received:
            cond.append(messages.c.status == "received")
        res = conn.execute(
            update(messages)
            .where(*cond)
            .values(
                status=p.status,
                routes=",".join(p.routes),
                processed_at=now,
                lease_owner=None,
                lease_until=None,
                reject_reason=p.reason if p.status == "rejected" else messages.c.reject_reason,
            )
        )
        if res.rowcount == 0:
            continue
        if p.patient_id_hashes and not replay:
            conn.execute(
                insert(patient_ids),
                [{"message_id": p.message_id, "id_hash": h} for h in p.patient_id_hashes],
            )
        kind = "replayed" if replay else "parsed"
        if p.status == "rejected":
            ev.append(
                {"at": now, "message_id": p.message_id, "kind": "rejected", "detail": p.reason}
            )
            continue
        ev.append({"at": now, "message_id": p.message_id, "kind": kind, "detail": ""})
        if p.reason:
            ev.append(
                {"at": now, "message_id": p.message_id, "kind": "invalid", "detail": p.reason}
            )
        if p.status == "filtered":
            ev.append(
                {
                    "at": now,
                    "message_id": p.message_id,
                    "kind": "filtered",
                    "detail": "no route matched",
                }
            )
            continue
        if p.deliveries:
            ids = list(
                conn.execute(
                    insert(deliveries).returning(deliveries.c.id, sort_by_parameter_order=True),
                    [
                        {
                            "message_id": p.message_id,
                            "destination": d.destination,
                            "route": d.route,
                            "patient_key": p.patient_key,
                            "control_id": p.control_id,
                            "status": "pending",
                            "attempts": 0,
                            "created_at": now,
                            "next_attempt_at": now,
                            "last_error": "",
                            "payload": p.payload,
                        }
                        for d in p.deliveries
                    ],
                ).scalars()
            )
            created.extend(ids)
            routed = ", ".join(f"{d.destination} (route {d.route})" for d in p.deliveries)
            ev.append(
                {"at": now, "message_id": p.message_id, "kind": "routed", "detail": f"to {routed}"}
            )
    if ev:
        conn.execute(insert(events), ev)
    return created


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    message_id: int
    destination: str
    patient_key: str
    control_id: str
    attempts: int
    sealed_payload: bytes


def is_paused(conn: Connection, destination: str) -> bool:
    return bool(
        conn.execute(
            select(destination_state.c.paused).where(destination_state.c.name == destination)
        ).scalar()
    )


def claim_deliveries(
    conn: Connection, destination: str, owner: str, now: datetime, lease: float, window: int
) -> list[ClaimedDelivery]:
    """Leases the deliveries of ``destination`` that may be sent now, in order.

    Per patient, rows are taken in (message_id, id) order as a chain; a patient
    whose oldest active row is leased elsewhere or waiting for its retry time
    is skipped entirely, so nothing overtakes it. Rows of messages newer than
    the oldest message the pipeline has not processed yet are not taken (they
    could be overtaken by a patient's earlier message still in the pipeline).
    """
    _advisory_lock(conn, f"eai:delivery:{destination}")
    if is_paused(conn, destination):
        return []
    watermark = conn.execute(
        select(func.min(messages.c.id)).where(messages.c.status == "received")
    ).scalar()
    q = (
        select(
            deliveries.c.id,
            deliveries.c.message_id,
            deliveries.c.patient_key,
            deliveries.c.control_id,
            deliveries.c.attempts,
            deliveries.c.next_attempt_at,
            deliveries.c.lease_until,
            deliveries.c.payload,
        )
        .where(deliveries.c.destination == destination, deliveries.c.status.in_(ACTIVE_DELIVERY))
        .order_by(deliveries.c.message_id, deliveries.c.id)
        .limit(window)
    )
    if watermark is not None:
        q = q.where(deliveries.c.message_id < watermark)
    rows = conn.execute(q).all()
    blocked: set[str] = set()
    chosen = []
    for r in rows:
        if r.patient_key in blocked:
            continue
        if (r.lease_until is not None and r.lease_until >= now) or r.next_attempt_at > now:
            blocked.add(r.patient_key)
            continue
        chosen.append(r)
    if not chosen:
        return []
    ids = [r.id for r in chosen]
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(ids))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease))
    )
    need_message = [r.message_id for r in chosen if r.payload is None]
    payloads: dict[int, bytes] = {}
    if need_message:
        payloads = dict(
            conn.execute(
                select(messages.c.id, messages.c.payload).where(messages.c.id.in_(need_message))
            ).all()
        )
    return [
        ClaimedDelivery(
            r.id,
            r.message_id,
            destination,
            r.patient_key,
            r.control_id,
            r.attempts,
            r.payload if r.payload is not None else payloads[r.message_id],
        )
        for r in chosen
    ]


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    delivery_id: int
    message_id: int
    status: str  # delivered | retrying | dead | pending (released, not attempted)
    attempts: int
    next_attempt_at: datetime
    detail: str


def record_outcomes(conn: Connection, outcomes: Sequence[DeliveryOutcome], now: datetime) -> None:
    ev: list[dict[str, object]] = []
    for o in outcomes:
        values: dict[str, object] = {
            "status": o.status,
            "attempts": o.attempts,
            "next_attempt_at": o.next_attempt_at,
            "lease_owner": None,
            "lease_until": None,
        }
        if o.status == "delivered":
            values["delivered_at"] = now
            values["last_error"] = ""
        elif o.status != "pending":
            values["last_error"] = o.detail
        conn.execute(update(deliveries).where(deliveries.c.id == o.delivery_id).values(**values))
        if o.status != "pending":
            ev.append(
                {
                    "at": now,
                    "message_id": o.message_id,
                    "delivery_id": o.delivery_id,
                    "kind": "attempt",
                    "detail": f"#{o.attempts} {o.status}: {o.detail}",
                }
            )
    if ev:
        conn.execute(insert(events), ev)


def clear_leases(conn: Connection, owner: str | None) -> None:
    """At start-up: what this node (``None``: any node) had leased is free again."""
    for table in (messages, deliveries):
        stmt = update(table).values(lease_owner=None, lease_until=None)
        if owner is not None:
            stmt = stmt.where(table.c.lease_owner == owner)
        conn.execute(stmt)


def oldest_pending(conn: Connection, destination: str) -> datetime | None:
    return conn.execute(
        select(func.min(deliveries.c.created_at)).where(
            and_(deliveries.c.destination == destination, deliveries.c.status.in_(ACTIVE_DELIVERY))
        )
    ).scalar()
