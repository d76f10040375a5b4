"""The outbox rows' changes of state: held rows released, delivery attempts recorded.

Touches: DB (every function runs inside a transaction given by the caller,
on the writer thread).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from eai.messages import FollowUp, MessageFacts
from eai.store._crypto import Cipher
from eai.store._follow_ups import insert_follow_ups
from eai.store._schema import deliveries, events

__all__ = [
    "INSERT_EVENTS",
    "SET_FACTS",
    "DeliveryOutcome",
    "execute_runs",
    "record_outcomes",
    "release_deliveries",
    "release_patients",
]

INSERT_EVENTS = insert(events)
"""Built once; executed with a list of rows it runs as one executemany."""


def execute_runs(conn: Connection, writes: Sequence[tuple[Any, dict[str, Any]]]) -> None:
    """Executes ``(statement, params)`` in order, consecutive same statements as one executemany
    (per-row statements cost far more in SQLAlchemy than the database work itself)."""
    i = 0
    while i < len(writes):
        stmt = writes[i][0]
        j = i
        while j < len(writes) and writes[j][0] is stmt:
            j += 1
        conn.execute(stmt, [params for _, params in writes[i:j]])
        i = j


_HELD = (
    select(deliveries.c.id, deliveries.c.message_id, deliveries.c.patient_key, deliveries.c.facts)
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
        INSERT_EVENTS,
        [
            {"at": now, "message_id": m, "delivery_id": d, "kind": "released", "detail": why}
            for d, m, why in held
        ],
    )


SET_FACTS = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"))
    .values(facts=bindparam("b_facts"))
)
"""Replaces a delivery's sealed facts (executemany with ``b_id``, ``b_facts``)."""


def release_patients(
    conn: Connection,
    releases: Sequence[tuple[int, str]],
    now: datetime,
    qualified: Mapping[int, bytes] | None = None,
    cipher: Cipher | None = None,
) -> None:
    """Held deliveries of these patients may go: a later message qualified the identity.

    ``releases`` holds (message id, patient key) in plan order; a patient's rows are
    released by its first qualifying message. One query for the whole batch.
    ``qualified``: per message id, sealed facts with the INS it qualified, written into
    the facts of the rows it releases (with ``cipher``: they were planned without it).
    """
    by_key: dict[str, int] = {}
    for mid, key in releases:
        by_key.setdefault(key, mid)
    held = conn.execute(_HELD, {"b_keys": list(by_key)}).all()
    if qualified and cipher is not None:
        refacts = [
            {"b_id": h.id, "b_facts": _with_ins(cipher, h.facts, qualified[by_key[h.patient_key]])}
            for h in held
            if by_key[h.patient_key] in qualified
        ]
        if refacts:
            conn.execute(SET_FACTS, refacts)
    release_deliveries(
        conn,
        [
            (h.id, h.message_id, f"identity qualified by message {by_key[h.patient_key]}")
            for h in held
        ],
        now,
    )


def _with_ins(cipher: Cipher, sealed: bytes | None, qualified: bytes) -> bytes:
    """A row's sealed facts with the INS of ``qualified`` (sealed facts too)."""
    if sealed is None:
        return qualified
    ins = MessageFacts.from_json(cipher.open(qualified))
    facts = MessageFacts.from_json(cipher.open(sealed))
    return cipher.seal(replace(facts, ins=ins.ins, ins_oid=ins.ins_oid).to_json())


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    delivery_id: int
    message_id: int
    status: str  # delivered | retrying | dead | pending (released, not attempted)
    attempts: int
    next_attempt_at: datetime
    detail: str
    follow_ups: tuple[FollowUp, ...] = ()
    """What the outcome asks the engine to send (written only with a final status,
    ``delivered`` or ``dead``: see :func:`record_outcomes`)."""


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


def record_outcomes(
    conn: Connection,
    outcomes: Sequence[DeliveryOutcome],
    now: datetime,
    cipher: Cipher | None = None,
) -> None:
    """Records each attempt's outcome and its ``attempt`` event; the follow-ups of a final
    outcome (delivered, dead) become outbox rows of its message in the same transaction
    (sealed with ``cipher``, needed as soon as one outcome carries follow-ups)."""
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
    execute_runs(conn, writes)
    if ev:
        conn.execute(INSERT_EVENTS, ev)
    made = [
        (o.delivery_id, o.follow_ups, f"after it was {o.status}")
        for o in outcomes
        if o.follow_ups and o.status in ("delivered", "dead")
    ]
    if made:
        if cipher is None:
            raise ValueError("record_outcomes needs the cipher to write follow-ups")
        insert_follow_ups(conn, cipher, made, now)
