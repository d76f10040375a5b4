"""The pipeline's and delivery workers' reads and writes: claims with leases, outcomes.

Touches: DB (every function runs inside a transaction given by the caller,
on the writer thread).

Claims use leases (owner + expiry) so several engine nodes can share one
PostgreSQL: on PostgreSQL a claim also takes a transaction-scoped advisory
lock, which serialises claims across nodes; on SQLite the single writer thread
already does. It is ONE lock for every claim (pipeline and all destinations): the
writer groups several claims in one transaction, in no fixed order, so with a
lock per queue two nodes could each hold one and wait for the other's (deadlock,
broken by PostgreSQL only after deadlock_timeout, stalling the whole writer).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)

from eai.store._crypto import Cipher
from eai.store._schema import (
    ACTIVE_DELIVERY,
    anomalies,
    deliveries,
    destination_state,
    events,
    messages,
    patient_ids,
)
from eai.store._xref import IdentityOp, apply_identity_op, known_local_ids, ordering_key_of_hash

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
    "held_messages",
    "is_paused",
    "record_outcomes",
    "settle_held",
]


_CLAIMS_LOCK = zlib.crc32(b"eai:claims")


def _advisory_lock(conn: Connection) -> None:
    """Takes the claims lock until the commit (re-entrant within a transaction)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CLAIMS_LOCK})


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    id: int
    listener: str
    received_at: datetime
    content_type: str
    control_id: str
    message_type: str
    sealed_payload: bytes


CLAIMED_COLUMNS = (
    messages.c.id,
    messages.c.listener,
    messages.c.received_at,
    messages.c.content_type,
    messages.c.control_id,
    messages.c.message_type,
    messages.c.payload,
)
"""The columns a :class:`ClaimedMessage` is made of (:func:`claimed_messages`)."""


def claimed_messages(rows: Sequence[Any]) -> list[ClaimedMessage]:
    """Rows selected with :data:`CLAIMED_COLUMNS`, as messages to plan."""
    return [
        ClaimedMessage(
            r.id, r.listener, r.received_at, r.content_type, r.control_id, r.message_type, r.payload
        )
        for r in rows
    ]


# The claims' statements are built once (the pipeline and delivery loops run them
# many times a second): no statement construction per call.
_CLAIMABLE_MESSAGES = (
    select(*CLAIMED_COLUMNS)
    .where(
        messages.c.status == "received",
        or_(
            messages.c.lease_until.is_(None),
            messages.c.lease_until < bindparam("b_now"),
            # Our own lease is stale by the time we claim again: one pipeline loop per
            # node, and a batch whose write failed (disk full) must not wait for expiry.
            messages.c.lease_owner == bindparam("b_owner"),
        ),
    )
    .order_by(messages.c.id)
    .limit(bindparam("b_limit", type_=Integer))
)
_LEASE_MESSAGES = (
    update(messages)
    .where(messages.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(lease_owner=bindparam("b_owner"), lease_until=bindparam("b_until"))
)


def claim_messages(
    conn: Connection, owner: str, now: datetime, lease: float, limit: int
) -> list[ClaimedMessage]:
    """Leases the oldest ``received`` messages not leased by a live owner."""
    _advisory_lock(conn)
    rows = conn.execute(
        _CLAIMABLE_MESSAGES, {"b_now": now, "b_limit": limit, "b_owner": owner}
    ).all()
    if not rows:
        return []
    conn.execute(
        _LEASE_MESSAGES,
        {
            "b_ids": [r.id for r in rows],
            "b_owner": owner,
            "b_until": now + timedelta(seconds=lease),
        },
    )
    return claimed_messages(rows)


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    destination: str
    route: str
    held: str = ""
    """Why the delivery is held (identity not qualified, charter rule); "" = sendable."""
    payload: bytes | None = None
    """Sealed payload for this delivery only (a mapping's output); None = the plan's."""


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
    facility: str = ""
    anomalies: tuple[tuple[str, str, str], ...] = ()
    """(rule, severity, explanation) of the identity checks that failed."""
    release_held: bool = False
    """The message qualifies its patient's identity: held deliveries may go."""
    patient_local: tuple[str, str] | None = None
    """(facility, keyed hash of the local id) when the message names a local patient id:
    the ordering key then follows the cross-references (merges, reconciliation) and
    ``patient_key`` is only its value for a local id the store does not know."""
    identity_ops: tuple[IdentityOp, ...] = ()
    """Cross-reference writes (reconciliation found, A40 merge, A47 id change), in order."""
    warnings: tuple[str, ...] = ()
    """What the parser repaired to read the message (no patient data): ``warning`` events."""


# Built once: executed with a list of parameter sets, each runs as ONE executemany
# (per-row statements cost far more in SQLAlchemy than the database work itself).
_SET_PLAN = (
    update(messages)
    .where(messages.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        routes=bindparam("b_routes"),
        processed_at=bindparam("b_at"),
        lease_owner=None,
        lease_until=None,
    )
)
_SET_REJECTED_PLAN = _SET_PLAN.values(reject_reason=bindparam("b_reason"))
_INSERT_PATIENT_IDS = insert(patient_ids)
_INSERT_DELIVERIES = insert(deliveries).returning(deliveries.c.id, sort_by_parameter_order=True)
_INSERT_EVENTS = insert(events)


def _execute_runs(conn: Connection, writes: Sequence[tuple[Any, dict[str, Any]]]) -> None:
    """Executes ``(statement, params)`` in order, consecutive same statements as one executemany."""
    i = 0
    while i < len(writes):
        stmt = writes[i][0]
        j = i
        while j < len(writes) and writes[j][0] is stmt:
            j += 1
        conn.execute(stmt, [params for _, params in writes[i:j]])
        i = j


_HELD = (
    select(deliveries.c.id, deliveries.c.message_id, deliveries.c.patient_key)
    .where(
        deliveries.c.patient_key.in_(bindparam("b_keys", expanding=True)),
        deliveries.c.status == "held",
    )
    .order_by(deliveries.c.id)
)
_RELEASE = (
    update(deliveries)
    .where(deliveries.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(status="pending", last_error="", next_attempt_at=bindparam("b_now"))
)


def release_deliveries(
    conn: Connection, held: Sequence[tuple[int, int, str]], now: datetime
) -> None:
    """Held deliveries may go: ``held`` is (delivery id, message id, why) per row; each
    becomes ``pending`` now and gets a ``released`` event saying why."""
    if not held:
        return
    conn.execute(_RELEASE, {"b_ids": [d for d, _, _ in held], "b_now": now})
    conn.execute(
        _INSERT_EVENTS,
        [
            {"at": now, "message_id": m, "delivery_id": d, "kind": "released", "detail": why}
            for d, m, why in held
        ],
    )


def _release_patients(conn: Connection, releases: Sequence[tuple[int, str]], now: datetime) -> None:
    """Held deliveries of these patients may go: a later message qualified the identity.

    ``releases`` holds (message id, patient key) in plan order; a patient's rows are
    released by its first qualifying message. One query for the whole batch.
    """
    by_key: dict[str, int] = {}
    for mid, key in releases:
        by_key.setdefault(key, mid)
    held = conn.execute(_HELD, {"b_keys": list(by_key)}).all()
    release_deliveries(
        conn,
        [
            (h.id, h.message_id, f"identity qualified by message {by_key[h.patient_key]}")
            for h in held
        ],
        now,
    )


def _anomaly_rows(p: MessagePlan, now: datetime) -> list[dict[str, object]]:
    return [
        {
            "at": now,
            "facility": p.facility,
            "message_id": p.message_id,
            "control_id": p.control_id,
            "rule": rule,
            "severity": severity,
            "explanation": text,
        }
        for rule, severity, text in p.anomalies
    ]


def _identity_event(p: MessagePlan, now: datetime) -> dict[str, object]:
    return {
        "at": now,
        "message_id": p.message_id,
        "kind": "identity",
        "detail": ", ".join(f"{r} ({sev})" for r, sev, _ in p.anomalies),
    }


def _ordering_keys(
    conn: Connection,
    cipher: Cipher | None,
    plans: Sequence[MessagePlan],
    live: set[int],
    now: datetime,
    *,
    write: bool,
) -> dict[int, str]:
    """The delivery ordering key of each plan whose patient the cross-references know,
    after all the plans' identity writes (applied here, in plan order, when ``write``).

    A batch of patients the store has never seen, without identity writes, costs one query.
    """
    ops = write and any(p.identity_ops for p in plans if p.message_id in live)
    pairs = [p.patient_local for p in plans if p.patient_local and p.message_id in live]
    known = known_local_ids(conn, pairs) if not ops else None
    if not ops and not known:
        return {}
    if cipher is None:
        raise ValueError("apply_plans needs the cipher to follow cross-references")
    todo: list[MessagePlan] = []
    seen: set[int] = set()
    for p in plans:
        if p.message_id in live and p.message_id not in seen:
            seen.add(p.message_id)
            todo.append(p)
    if ops:
        for p in todo:
            if p.status != "rejected":
                for op in p.identity_ops:
                    apply_identity_op(conn, cipher, op, now)
    # Keys after ALL the batch's writes: the batch's deliveries are not in the outbox yet,
    # so an op cannot re-key those of earlier plans; they get the final key directly.
    return {
        p.message_id: ordering_key_of_hash(conn, cipher, *p.patient_local)
        for p in todo
        if p.patient_local and (known is None or p.patient_local in known)
    }


def apply_plans(
    conn: Connection,
    plans: Sequence[MessagePlan],
    now: datetime,
    *,
    replay: bool = False,
    only_received: bool = True,
    cipher: Cipher | None = None,
) -> list[int]:
    """Writes the outbox rows and the new status of each planned message.

    With ``only_received`` a plan applies only if its message is still
    ``received`` (a lease that expired mid-way cannot route a message twice):
    those messages are read first and, on PostgreSQL, locked until the commit.
    The plans' identity writes (``identity_ops``) are applied first, in order, except
    on replay; ``cipher`` is needed as soon as a plan names a patient the
    cross-references know. Returns the ids of the deliveries created.
    """
    if not plans:
        return []
    q = select(messages.c.id).where(messages.c.id.in_({p.message_id for p in plans}))
    if only_received:
        q = q.where(messages.c.status == "received").with_for_update()
    live = set(conn.execute(q).scalars())
    keys = _ordering_keys(conn, cipher, plans, live, now, write=not replay)

    status_writes: list[tuple[Any, dict[str, Any]]] = []
    id_rows: list[dict[str, object]] = []
    delivery_rows: list[dict[str, object]] = []
    anomaly_rows: list[dict[str, object]] = []
    releases: list[tuple[int, str]] = []
    ev: list[dict[str, object]] = []
    kind = "replayed" if replay else "parsed"
    for p in plans:
        if p.message_id not in live:
            continue
        if only_received:
            live.discard(p.message_id)  # now processed: a second plan for it does not apply
        patient_key = keys.get(p.message_id, p.patient_key)
        params: dict[str, Any] = {
            "b_id": p.message_id,
            "b_status": p.status,
            "b_routes": ",".join(p.routes),
            "b_at": now,
        }
        if p.status == "rejected":
            params["b_reason"] = p.reason
            status_writes.append((_SET_REJECTED_PLAN, params))
        else:
            status_writes.append((_SET_PLAN, params))
        if p.patient_id_hashes and not replay:
            id_rows.extend({"message_id": p.message_id, "id_hash": h} for h in p.patient_id_hashes)
        ev.extend(
            {"at": now, "message_id": p.message_id, "kind": "warning", "detail": w}
            for w in p.warnings
        )
        if p.anomalies:
            anomaly_rows.extend(_anomaly_rows(p, now))
            ev.append(_identity_event(p, now))
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
        if p.release_held and patient_key:
            releases.append((p.message_id, patient_key))
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
            delivery_rows.extend(
                {
                    "message_id": p.message_id,
                    "destination": d.destination,
                    "route": d.route,
                    "patient_key": patient_key,
                    "control_id": p.control_id,
                    "status": "held" if d.held else "pending",
                    "attempts": 0,
                    "created_at": now,
                    "next_attempt_at": now,
                    "last_error": d.held,
                    "payload": d.payload if d.payload is not None else p.payload,
                }
                for d in p.deliveries
            )
            routed = ", ".join(f"{d.destination} (route {d.route})" for d in p.deliveries)
            ev.append(
                {"at": now, "message_id": p.message_id, "kind": "routed", "detail": f"to {routed}"}
            )
    _execute_runs(conn, status_writes)
    if releases:  # before inserting: this batch's own rows are not released
        _release_patients(conn, releases, now)
    if anomaly_rows:
        conn.execute(insert(anomalies), anomaly_rows)
    if id_rows:
        conn.execute(_INSERT_PATIENT_IDS, id_rows)
    created: list[int] = []
    if delivery_rows:
        created = list(conn.execute(_INSERT_DELIVERIES, delivery_rows).scalars())
    if ev:
        conn.execute(_INSERT_EVENTS, ev)
    return created


def held_messages(conn: Connection, reason: str, limit: int) -> list[ClaimedMessage]:
    """The messages with a delivery held for ``reason`` (oldest first), to plan again."""
    ids = (
        select(deliveries.c.message_id)
        .where(deliveries.c.status == "held", deliveries.c.last_error == reason)
        .distinct()
        .order_by(deliveries.c.message_id)
        .limit(limit)
    )
    rows = conn.execute(
        select(*CLAIMED_COLUMNS)
        .where(messages.c.id.in_(ids.scalar_subquery()))
        .order_by(messages.c.id)
    ).all()
    return claimed_messages(rows)


_SET_HELD_REASON = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"))
    .values(last_error=bindparam("b_reason"))
)


def settle_held(
    conn: Connection,
    plans: Sequence[MessagePlan],
    reason: str,
    now: datetime,
    *,
    cipher: Cipher,
) -> list[str]:
    """Applies a new plan to the deliveries held for ``reason`` (the identity server was
    unreachable when they were planned): each is released when its destination's new
    plan sends it, else keeps waiting for the new plan's reason. The plans' identity
    writes and anomalies are recorded as for a new message. Returns the destinations of
    the deliveries released."""
    if not plans:
        return []
    by_message = {p.message_id: p for p in plans}
    held = conn.execute(
        select(deliveries.c.id, deliveries.c.message_id, deliveries.c.destination).where(
            deliveries.c.message_id.in_(list(by_message)),
            deliveries.c.status == "held",
            deliveries.c.last_error == reason,
        )
    ).all()
    release: list[tuple[int, int, str]] = []
    relabel: list[dict[str, object]] = []
    destinations: list[str] = []
    for h in held:
        p = by_message[h.message_id]
        planned = next((d for d in p.deliveries if d.destination == h.destination), None)
        if p.status != "processed" or planned is None:
            continue  # the new plan no longer sends it here: it waits for an operator
        if planned.held:
            relabel.append({"b_id": h.id, "b_reason": planned.held})
        else:
            release.append((h.id, h.message_id, "identity reconciled with the identity server"))
            destinations.append(h.destination)
    keys = _ordering_keys(conn, cipher, plans, set(by_message), now, write=True)
    if relabel:
        conn.execute(_SET_HELD_REASON, relabel)
    release_deliveries(conn, release, now)
    rows = [r for p in plans for r in _anomaly_rows(p, now)]
    if rows:
        conn.execute(insert(anomalies), rows)
        conn.execute(_INSERT_EVENTS, [_identity_event(p, now) for p in plans if p.anomalies])
    qualified = [
        (p.message_id, keys.get(p.message_id, p.patient_key)) for p in plans if p.release_held
    ]
    if qualified:
        _release_patients(conn, qualified, now)
    return sorted(set(destinations))


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    message_id: int
    destination: str
    patient_key: str
    control_id: str
    attempts: int
    sealed_payload: bytes


_PAUSED = select(destination_state.c.paused).where(destination_state.c.name == bindparam("b_name"))
# The watermark is a subquery of the same statement: one snapshot. Read apart
# (READ COMMITTED on PostgreSQL), another node could commit in between a
# patient's later message routed while its earlier one is still ``received``.
_WATERMARK = (
    select(func.min(messages.c.id)).where(messages.c.status == "received").scalar_subquery()
)
_CLAIMABLE_DELIVERIES = (
    select(
        deliveries.c.id,
        deliveries.c.message_id,
        deliveries.c.patient_key,
        deliveries.c.control_id,
        deliveries.c.attempts,
        deliveries.c.next_attempt_at,
        deliveries.c.lease_until,
        deliveries.c.lease_owner,
        deliveries.c.payload,
        deliveries.c.status,
    )
    .where(
        deliveries.c.destination == bindparam("b_destination"),
        # held rows are read too: they block their patient's later rows
        deliveries.c.status.in_((*ACTIVE_DELIVERY, "held")),
        or_(_WATERMARK.is_(None), deliveries.c.message_id < _WATERMARK),
    )
    .order_by(deliveries.c.message_id, deliveries.c.id)
    .limit(bindparam("b_limit", type_=Integer))
)
_LEASE_DELIVERIES = (
    update(deliveries)
    .where(deliveries.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(lease_owner=bindparam("b_owner"), lease_until=bindparam("b_until"))
)
_PAYLOADS = select(messages.c.id, messages.c.payload).where(
    messages.c.id.in_(bindparam("b_ids", expanding=True))
)


def is_paused(conn: Connection, destination: str) -> bool:
    return bool(conn.execute(_PAUSED, {"b_name": destination}).scalar())


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
    _advisory_lock(conn)
    if is_paused(conn, destination):
        return []
    rows = conn.execute(
        _CLAIMABLE_DELIVERIES, {"b_destination": destination, "b_limit": window}
    ).all()
    blocked: set[str] = set()
    chosen = []
    for r in rows:
        if r.patient_key in blocked:
            continue
        if (
            r.status == "held"
            # our own lease is stale: one worker per destination per node, and its last
            # round ended (a round whose outcome could not be recorded is sent again)
            or (r.lease_until is not None and r.lease_until >= now and r.lease_owner != owner)
            or r.next_attempt_at > now
        ):
            blocked.add(r.patient_key)
            continue
        chosen.append(r)
    if not chosen:
        return []
    conn.execute(
        _LEASE_DELIVERIES,
        {
            "b_ids": [r.id for r in chosen],
            "b_owner": owner,
            "b_until": now + timedelta(seconds=lease),
        },
    )
    need_message = [r.message_id for r in chosen if r.payload is None]
    payloads: dict[int, bytes] = {}
    if need_message:
        payloads = dict(conn.execute(_PAYLOADS, {"b_ids": need_message}).all())
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


_SET_OUTCOME = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        attempts=bindparam("b_attempts"),
        next_attempt_at=bindparam("b_next"),
        lease_owner=None,
        lease_until=None,
    )
)
_SET_DELIVERED = _SET_OUTCOME.values(delivered_at=bindparam("b_now"), last_error="")
_SET_FAILED = _SET_OUTCOME.values(last_error=bindparam("b_error"))


def record_outcomes(conn: Connection, outcomes: Sequence[DeliveryOutcome], now: datetime) -> None:
    writes: list[tuple[Any, dict[str, Any]]] = []
    ev: list[dict[str, object]] = []
    for o in outcomes:
        params: dict[str, Any] = {
            "b_id": o.delivery_id,
            "b_status": o.status,
            "b_attempts": o.attempts,
            "b_next": o.next_attempt_at,
        }
        if o.status == "delivered":
            params["b_now"] = now
            writes.append((_SET_DELIVERED, params))
        elif o.status == "pending":
            writes.append((_SET_OUTCOME, params))
        else:
            params["b_error"] = o.detail
            writes.append((_SET_FAILED, params))
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
    _execute_runs(conn, writes)
    if ev:
        conn.execute(_INSERT_EVENTS, ev)


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
