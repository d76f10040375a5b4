"""Writes journal entries (raw messages + their acknowledgement) in one grouped insert.

Touches: DB (called on the writer thread, inside its transaction).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, insert, select

from eai.messages import IngestResult, JournalEntry
from eai.store._crypto import Cipher
from eai.store._schema import events, messages

__all__ = ["ack_code", "insert_entries", "naive_utc"]


def utcnow() -> datetime:
    """Now, as the journal stores times (naive UTC)."""
    return datetime.now(UTC).replace(tzinfo=None)


def naive_utc(dt: datetime) -> datetime:
    """Times are stored as naive UTC (portable between SQLite and PostgreSQL)."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def ack_code(ack: bytes) -> str:
    """MSA-1 of an acknowledgement, read without a full parse ('' if none)."""
    if len(ack) < 4:
        return ""
    sep = ack[3:4]
    pos = ack.find(b"MSA" + sep)
    if pos < 0:
        return ""
    start = pos + 4
    end = ack.find(sep, start)
    return ack[start : end if end >= 0 else start + 2].decode("ascii", "replace").strip("\r")


# Built once (the listeners' hot path): no statement construction per batch.
_KNOWN = select(messages.c.dedup_key, messages.c.id, messages.c.ack).where(
    messages.c.dedup_key.in_(bindparam("b_keys", expanding=True))
)
_INSERT_MESSAGES = insert(messages).returning(messages.c.id, sort_by_parameter_order=True)
_INSERT_EVENTS = insert(events)


def insert_entries(
    conn: Connection, cipher: Cipher, entries: list[JournalEntry]
) -> list[IngestResult]:
    """Journals ``entries``; a retransmission (known dedup key) returns the stored ACK."""
    keys = [e.dedup_key for e in entries if e.dedup_key]
    known: dict[str, tuple[int, bytes]] = {}
    if keys:
        rows = conn.execute(_KNOWN, {"b_keys": keys})
        known = {r.dedup_key: (r.id, r.ack) for r in rows}

    results: list[IngestResult | None] = [None] * len(entries)
    first_in_batch: dict[str, int] = {}
    later_copies: list[tuple[int, int]] = []
    rows_to_insert: list[dict[str, object]] = []
    positions: list[int] = []
    for i, e in enumerate(entries):
        if e.dedup_key:
            if e.dedup_key in known:
                mid, ack = known[e.dedup_key]
                results[i] = IngestResult(message_id=mid, duplicate=True, stored_ack=ack)
                continue
            if e.dedup_key in first_in_batch:
                later_copies.append((i, first_in_batch[e.dedup_key]))
                continue
            first_in_batch[e.dedup_key] = i
        positions.append(i)
        rows_to_insert.append(
            {
                "listener": e.listener,
                "received_at": naive_utc(e.received_at),
                "content_type": e.content_type,
                "status": e.status,
                "peer": e.peer[:128],
                "control_id": e.control_id[:128],
                "message_type": e.message_type[:32],
                "sending_application": e.sending_application[:128],
                "sending_facility": e.sending_facility[:128],
                "dedup_key": e.dedup_key,
                "size": len(e.payload),
                "payload": cipher.seal(e.payload),
                "ack": e.ack,
                "reject_reason": e.reject_reason,
                "routes": "",
            }
        )
    if rows_to_insert:
        ids = list(conn.execute(_INSERT_MESSAGES, rows_to_insert).scalars())
        event_rows: list[dict[str, object]] = []
        for pos, mid in zip(positions, ids, strict=True):
            e = entries[pos]
            results[pos] = IngestResult(message_id=mid)
            at = naive_utc(e.received_at)
            event_rows.append(
                {
                    "at": at,
                    "message_id": mid,
                    "kind": "received",
                    "detail": f"listener={e.listener} bytes={len(e.payload)} peer={e.peer}",
                }
            )
            kind = "rejected" if e.status == "rejected" else "acknowledged"
            detail = f"ack={ack_code(e.ack)}"
            if e.reject_reason:
                detail += f" reason={e.reject_reason}"
            event_rows.append({"at": at, "message_id": mid, "kind": kind, "detail": detail})
        conn.execute(_INSERT_EVENTS, event_rows)
    for i, first in later_copies:
        res = results[first]
        assert res is not None
        results[i] = IngestResult(
            message_id=res.message_id, duplicate=True, stored_ack=entries[first].ack
        )
    return [r for r in results if r is not None]
