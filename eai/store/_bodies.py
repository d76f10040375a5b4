"""Large payloads out of their rows: ``message_bodies`` and ``delivery_bodies``.

Touches: the journal (its two body tables; reads join them through the expressions below).

SQLite writes a row again whole, overflow pages included, on any UPDATE that changes the
row's size: leasing a message, setting its status, leasing a delivery and recording its
outcome each copied a 300 kB ORU or its 350 kB Bundle into the WAL, and the checkpoint
copied them again (measured: 610 kB of WAL to set ``lease_owner`` on a row holding a
300 kB payload, none on the same row without it). A sealed payload longer than
:data:`INLINE_MAX` is therefore written once, in its body table, keyed by its row's id,
and the row's ``payload`` holds :data:`OUT_OF_ROW` (b"": a sealed payload is never
empty). Smaller ones (an ADT, a few kB) stay in their row, which fits one page and
costs nothing more to update. PostgreSQL keeps an unchanged TOASTed value on UPDATE, so
it does not need this; it gets the same layout all the same: one code path, tested on
both.

Readers select :data:`MESSAGE_PAYLOAD` / :data:`DELIVERY_PAYLOAD` (labelled ``payload``)
instead of the columns: the body when there is one, else the row's own value (for a
delivery, NULL still means "the message's payload as received").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, func, insert, select

from eai.store._schema import deliveries, delivery_bodies, message_bodies, messages

__all__ = [
    "DELIVERY_PAYLOAD",
    "INLINE_MAX",
    "MESSAGE_PAYLOAD",
    "OUT_OF_ROW",
    "set_aside",
    "store_delivery_bodies",
    "store_message_bodies",
]

INLINE_MAX = 2048
"""The longest sealed payload kept in its row: with the row's other columns, well within
one 4 kB SQLite page (SQLite spills a record beyond ~4 kB to overflow pages)."""

OUT_OF_ROW = b""
"""The row's ``payload`` when its body is in the body table."""

MESSAGE_PAYLOAD: ColumnElement[Any] = func.coalesce(
    select(message_bodies.c.payload)
    .where(message_bodies.c.message_id == messages.c.id)
    .scalar_subquery(),
    messages.c.payload,
)
"""A message's sealed payload, wherever it is (select it ``.label("payload")``)."""

DELIVERY_PAYLOAD: ColumnElement[Any] = func.coalesce(
    select(delivery_bodies.c.payload)
    .where(delivery_bodies.c.delivery_id == deliveries.c.id)
    .scalar_subquery(),
    deliveries.c.payload,
)
"""A delivery's own sealed payload, wherever it is; NULL: the message's as received."""


def set_aside(rows: Sequence[dict[str, Any]]) -> list[tuple[int, bytes]]:
    """Replaces, in ``rows`` (about to be inserted), each ``payload`` longer than
    :data:`INLINE_MAX` by :data:`OUT_OF_ROW`; returns ``(index in rows, payload)`` of
    those, for :func:`store_message_bodies` / :func:`store_delivery_bodies` once the rows
    have their ids."""
    aside: list[tuple[int, bytes]] = []
    for i, row in enumerate(rows):
        payload = row.get("payload")
        if payload is not None and len(payload) > INLINE_MAX:
            aside.append((i, payload))
            row["payload"] = OUT_OF_ROW
    return aside


def store_message_bodies(
    conn: Connection, ids: Sequence[int], aside: Sequence[tuple[int, bytes]]
) -> None:
    """Inserts the bodies :func:`set_aside` took from message rows whose ids are ``ids``
    (in the rows' order), in ``conn``'s transaction."""
    _store(conn, message_bodies, ids, aside)


def store_delivery_bodies(
    conn: Connection, ids: Sequence[int], aside: Sequence[tuple[int, bytes]]
) -> None:
    """As :func:`store_message_bodies`, for delivery rows."""
    _store(conn, delivery_bodies, ids, aside)


def _store(
    conn: Connection, table: Table, ids: Sequence[int], aside: Sequence[tuple[int, bytes]]
) -> None:
    if aside:
        [key] = table.primary_key.columns.keys()
        conn.execute(insert(table), [{key: ids[i], "payload": p} for i, p in aside])
