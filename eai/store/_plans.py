"""The pipeline's decisions written: message statuses, outbox rows, anomalies, identity writes.

Touches: DB (every function runs inside a transaction given by the caller,
on the writer thread).

A :class:`MessagePlan` is what the pipeline decided for one message;
:func:`apply_plans` writes a batch of them in one transaction (the transactional
outbox), :func:`settle_held` re-plans deliveries held for an identity server that
was unreachable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from eai.store._anomalies import new_anomalies
from eai.store._bodies import set_aside, store_delivery_bodies
from eai.store._claims import CLAIMED_COLUMNS, ClaimedMessage, claimed_messages
from eai.store._crypto import Cipher
from eai.store._identity_ops import IdentityOp, apply_identity_op
from eai.store._outbox import (
    INSERT_EVENTS,
    SET_FACTS,
    execute_runs,
    release_deliveries,
    release_patients,
)
from eai.store._schema import anomalies, deliveries, messages, patient_ids
from eai.store._xref import known_local_ids, ordering_key_of_hash

__all__ = [
    "MessagePlan",
    "PlannedDelivery",
    "apply_plans",
    "held_messages",
    "settle_held",
]


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    destination: str
    route: str
    held: str = ""
    """Why the delivery is held (identity not qualified, charter rule); "" = sendable."""
    payload: bytes | None = None
    """Sealed payload for this delivery only (a mapping's output); None = the plan's."""
    media_type: str = ""
    """What the payload is (``eai.messages.MEDIA_*``); "" = unknown (stored as NULL)."""
    mapping: str = ""
    """The mapping that made ``payload`` ("" = the message as received)."""
    facts: bytes | None = None
    """Sealed ``eai.messages.MessageFacts`` JSON; None = no facts."""
    return_to: str = ""
    """The route's ``business_acks`` destination ("" = none): ``OutboxItem.return_to``."""


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
    qualified_facts: bytes | None = None
    """Sealed ``eai.messages.MessageFacts`` with the INS the message qualified: written
    into the facts of the held deliveries it releases (planned without an INS)."""
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
    On replay, an anomaly already recorded for the message is not recorded (nor mailed)
    again, and the caller writes the ``replayed`` event (who, with which config).
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
        if not replay:
            ev.append({"at": now, "message_id": p.message_id, "kind": "parsed", "detail": ""})
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
                    "media_type": d.media_type or None,
                    "mapping": d.mapping or None,
                    "facts": d.facts,
                    "return_to": d.return_to or None,
                }
                for d in p.deliveries
            )
            routed = ", ".join(f"{d.destination} (route {d.route})" for d in p.deliveries)
            ev.append(
                {"at": now, "message_id": p.message_id, "kind": "routed", "detail": f"to {routed}"}
            )
    execute_runs(conn, status_writes)
    if releases:  # before inserting: this batch's own rows are not released
        release_patients(conn, releases, now, _qualified(plans), cipher)
    if anomaly_rows and replay:
        anomaly_rows = new_anomalies(conn, anomaly_rows)
    if anomaly_rows:
        conn.execute(insert(anomalies), anomaly_rows)
    if id_rows:
        conn.execute(_INSERT_PATIENT_IDS, id_rows)
    created: list[int] = []
    if delivery_rows:
        aside = set_aside(delivery_rows)
        created = list(conn.execute(_INSERT_DELIVERIES, delivery_rows).scalars())
        store_delivery_bodies(conn, created, aside)
    if ev:
        conn.execute(INSERT_EVENTS, ev)
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


def _qualified(plans: Sequence[MessagePlan]) -> dict[int, bytes]:
    return {p.message_id: p.qualified_facts for p in plans if p.qualified_facts is not None}


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
    refacts: list[dict[str, object]] = []
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
            refacts.append({"b_id": h.id, "b_facts": planned.facts})
            destinations.append(h.destination)
    keys = _ordering_keys(conn, cipher, plans, set(by_message), now, write=True)
    if relabel:
        conn.execute(_SET_HELD_REASON, relabel)
    release_deliveries(conn, release, now)
    if refacts:  # the new plan's facts: its identity is qualified now (the INS)
        conn.execute(SET_FACTS, refacts)
    rows = new_anomalies(conn, [r for p in plans for r in _anomaly_rows(p, now)])
    if rows:
        conn.execute(insert(anomalies), rows)
        conn.execute(INSERT_EVENTS, [_identity_event(p, now) for p in plans if p.anomalies])
    qualified = [
        (p.message_id, keys.get(p.message_id, p.patient_key)) for p in plans if p.release_held
    ]
    if qualified:
        release_patients(conn, qualified, now, _qualified(plans), cipher)
    return sorted(set(destinations))
