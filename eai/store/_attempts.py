"""What a delivery's earlier attempts recorded, for the destination retrying it.

Touches: DB (a read, in a connection given by the caller).

A destination whose one delivery is several sends (the MSSanté destination: one mail per
recipient set) writes, in the detail of a failed attempt, what the peer already accepted;
:func:`attempt_details` reads those details back when the delivery is retried, after a
restart or on another node, so that only what was not accepted is sent again.
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select

from eai.store._schema import events

__all__ = ["attempt_details"]

_DETAILS = (
    select(events.c.detail)
    .where(events.c.delivery_id == bindparam("b_id"), events.c.kind == "attempt")
    .order_by(events.c.id)
)


def attempt_details(conn: Connection, delivery_id: int) -> tuple[str, ...]:
    """The details of delivery ``delivery_id``'s ``attempt`` events, oldest first (none
    when it has no recorded attempt, or no such delivery)."""
    return tuple(str(d) for d in conn.execute(_DETAILS, {"b_id": delivery_id}).scalars())
