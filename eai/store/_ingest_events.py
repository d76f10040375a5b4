"""The ingest path's marks on a journey: control ids reused, retransmissions received.

Touches: DB (inside the journal's transaction, on the writer thread).

A retransmission (same dedup key, same content: :mod:`eai.store._journal`) is not
journaled again; it leaves a ``retransmitted`` event on the original message, so that
``eai messages show`` tells why a resent message went nowhere. A control id reused with
another content marks the new message (``id_reused``) and its sending facility
(anomaly ``MSH10-REUTILISE``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, insert

from eai.messages import JournalEntry
from eai.store._anomalies import control_id_reused, record_anomalies
from eai.store._schema import events

__all__ = ["record_retransmissions", "record_reuses"]

_INSERT_EVENTS = insert(events)


def record_reuses(conn: Connection, reuses: Sequence[tuple[int, int, JournalEntry]]) -> None:
    """The journey event and the facility's anomaly of each (new id, earlier id, entry)."""
    if not reuses:
        return
    at = datetime.now(UTC).replace(tzinfo=None)
    conn.execute(
        _INSERT_EVENTS,
        [
            {
                "at": at,
                "message_id": mid,
                "kind": "id_reused",
                "detail": f"control id reused: message {earlier} has the same "
                "dedup key (listener, MSH-3, MSH-4, MSH-10) with another content; "
                "journaled as a new message",
            }
            for mid, earlier, _ in reuses
        ],
    )
    record_anomalies(
        conn,
        [
            control_id_reused(e.sending_facility, mid, e.control_id, earlier)
            for mid, earlier, e in reuses
        ],
        at,
    )


def record_retransmissions(
    conn: Connection, copies: Sequence[tuple[int, JournalEntry, str]]
) -> None:
    """A ``retransmitted`` event on the original message of each (original id, the copy
    received, MSA-1 of the acknowledgement answered again or "")."""
    if not copies:
        return
    conn.execute(
        _INSERT_EVENTS,
        [
            {
                "at": e.received_at,
                "message_id": mid,
                "kind": "retransmitted",
                "detail": f"the same message again on {e.listener}"
                + (f" from {e.peer}" if e.peer else "")
                + (f": answered {code} as before" if code else ": answered as before")
                + ", not processed again (a new message needs a new control id)",
            }
            for mid, e, code in copies
        ],
    )
