"""Leases on the journal's work: the pipeline claims messages, delivery workers claim rows.

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
    ColumnElement,
    Connection,
    Integer,
    ScalarSelect,
    and_,
    bindparam,
    case,
    or_,
    select,
    text,
    update,
)

from eai.store._bodies import DELIVERY_PAYLOAD, MESSAGE_PAYLOAD
from eai.store._schema import ACTIVE_DELIVERY, deliveries, destination_state, messages

__all__ = [
    "CLAIMED_COLUMNS",
    "ClaimedDelivery",
    "ClaimedMessage",
    "claim_deliveries",
    "claim_messages",
    "claimed_messages",
    "clear_leases",
    "is_paused",
    "lock_claims",
]


_CLAIMS_LOCK = zlib.crc32(b"eai:claims")


def lock_claims(conn: Connection) -> None:
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
    MESSAGE_PAYLOAD.label("payload"),
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
    lock_claims(conn)
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
class ClaimedDelivery:
    id: int
    message_id: int
    destination: str
    patient_key: str
    control_id: str
    attempts: int
    sealed_payload: bytes
    route: str = ""
    media_type: str = ""
    """"" on rows older than the destination contract: see ``content_type``."""
    mapping: str = ""
    sealed_facts: bytes | None = None
    content_type: str = ""
    """The message's content type, read only when ``media_type`` is ""."""
    return_to: str = ""
    """Where the route sends the establishment's answers ("" = none)."""


_PAUSED = select(destination_state.c.paused).where(destination_state.c.name == bindparam("b_name"))

# What a delivery waits for: the earlier messages still ``received`` (the pipeline has
# not planned them yet, so they could be a patient's earlier message) that share its
# message's ordering key (eai.order_key: the sending facility and the establishment's
# own patient id, read at ingest), or have none ("": unknown; NULL: journaled before
# keys existed), which hold back everybody; a delivery whose own message has no key
# waits for every earlier ``received`` message, as all did behind the former global
# watermark. So a node killed with messages leased delays the later messages of their
# keys only (and every later one behind a keyless message), until its leases are freed.
#
# It is computed in the statement that reads the rows: one snapshot. Read apart (READ
# COMMITTED on PostgreSQL), another node could commit in between a patient's later
# message routed while its earlier one is still ``received``. Rows that wait are read
# too (``waits``), not filtered out, for two reasons: the claim then blocks their
# ``patient_key`` (a patient the pipeline keys by regional identity may span several
# ordering keys: none of its later rows overtakes one that waits), and the statement
# reads at most ``b_limit`` rows whatever waits (filtered out, a stuck keyless message
# would make every claim scan all the rows behind it).
#
# Cost per statement: the three oldest-``received`` look-ups are uncorrelated, run once
# per statement, each the first entry of an index range: ``ix_messages_status_id``
# (status = 'received'; the former watermark's own look-up) and
# ``ix_messages_received_key`` (status, order_key IS NULL / = ''). The key look-up is
# correlated: one seek per row read, in (status, order_key, id < message_id) of
# ``ix_messages_received_key``; the message row itself by primary key. So a claim costs
# O(b_limit x log n) however many messages are ``received`` (a burst of 20,000). Checked
# with EXPLAIN QUERY PLAN on SQLite 3.40 (all SEARCH, no SCAN of ``messages``) and
# EXPLAIN on PostgreSQL 15 with 20,000 ``received`` rows (Index Only Scans of
# ix_messages_received_key, a SubPlan per row; the rows' order from ix_deliveries_*, as
# before); tests/integration/test_ordering_keys.py keeps checking both plans.
_earlier = messages.alias("earlier")


def _oldest_received(*where: ColumnElement[bool]) -> ScalarSelect[Any]:
    """The id of the oldest ``received`` message matching ``where`` (NULL: none). ORDER BY
    LIMIT 1 rather than min(): PostgreSQL reads the whole ``IS NULL`` range for a min()."""
    return (
        select(_earlier.c.id)
        .where(_earlier.c.status == "received", *where)
        .order_by(_earlier.c.id)
        .limit(1)
        .scalar_subquery()
    )


_KEYLESS = or_(messages.c.order_key.is_(None), messages.c.order_key == "")
_WAITS = or_(
    deliveries.c.message_id > _oldest_received(_earlier.c.order_key.is_(None)),
    deliveries.c.message_id > _oldest_received(_earlier.c.order_key == ""),
    and_(_KEYLESS, deliveries.c.message_id > _oldest_received()),
    select(_earlier.c.id)
    .where(
        _earlier.c.status == "received",
        _earlier.c.order_key == messages.c.order_key,
        _earlier.c.id < deliveries.c.message_id,
    )
    .exists(),
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
        DELIVERY_PAYLOAD.label("payload"),
        deliveries.c.status,
        deliveries.c.route,
        deliveries.c.media_type,
        deliveries.c.mapping,
        deliveries.c.facts,
        deliveries.c.return_to,
        # NULL (an oldest look-up found nothing) is "does not wait"
        case((_WAITS, 1), else_=0).label("waits"),
    )
    .join_from(deliveries, messages, messages.c.id == deliveries.c.message_id)
    .where(
        deliveries.c.destination == bindparam("b_destination"),
        # held rows are read too: they block their patient's later rows
        deliveries.c.status.in_((*ACTIVE_DELIVERY, "held")),
    )
    .order_by(deliveries.c.message_id, deliveries.c.id)
    .limit(bindparam("b_limit", type_=Integer))
)
_LEASE_DELIVERIES = (
    update(deliveries)
    .where(deliveries.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(lease_owner=bindparam("b_owner"), lease_until=bindparam("b_until"))
)
_PAYLOADS = select(messages.c.id, MESSAGE_PAYLOAD.label("payload")).where(
    messages.c.id.in_(bindparam("b_ids", expanding=True))
)
_CONTENT_TYPES = select(messages.c.id, messages.c.content_type).where(
    messages.c.id.in_(bindparam("b_ids", expanding=True))
)


def is_paused(conn: Connection, destination: str) -> bool:
    return bool(conn.execute(_PAUSED, {"b_name": destination}).scalar())


def claim_deliveries(
    conn: Connection, destination: str, owner: str, now: datetime, lease: float, window: int
) -> list[ClaimedDelivery]:
    """Leases the deliveries of ``destination`` that may be sent now, in order.

    Per patient, rows are taken in (message_id, id) order as a chain; a patient
    whose oldest active row is leased elsewhere, waiting for its retry time or
    waiting for an earlier message of its ordering key that the pipeline has not
    processed yet (see ``_WAITS``) is skipped entirely, so nothing overtakes it.
    """
    lock_claims(conn)
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
            r.waits
            or r.status == "held"
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
    untyped = [r.message_id for r in chosen if r.media_type is None]
    content_types: dict[int, str] = {}
    if untyped:  # rows older than the destination contract
        content_types = dict(conn.execute(_CONTENT_TYPES, {"b_ids": untyped}).all())
    return [
        ClaimedDelivery(
            r.id,
            r.message_id,
            destination,
            r.patient_key,
            r.control_id,
            r.attempts,
            r.payload if r.payload is not None else payloads[r.message_id],
            r.route,
            r.media_type or "",
            r.mapping or "",
            r.facts,
            content_types.get(r.message_id, ""),
            r.return_to or "",
        )
        for r in chosen
    ]


def clear_leases(conn: Connection, owner: str | None) -> None:
    """At start-up: what this node (``None``: any node) had leased is free again."""
    for table in (messages, deliveries):
        stmt = update(table).values(lease_owner=None, lease_until=None)
        if owner is not None:
            stmt = stmt.where(table.c.lease_owner == owner)
        conn.execute(stmt)
