"""Writes journal entries (raw messages + their acknowledgement) in one grouped insert.

Touches: DB (called on the writer thread, inside its transaction).

This is the listeners' hot path: a sender that waits for each answer makes batches of
one entry. Those statements are compiled once per dialect (``_driver_sql.DriverStatement``)
and run on the DBAPI cursor of the caller's connection, inside its transaction, with
the parameters converted by the same SQLAlchemy type processors a ``conn.execute``
would apply; this skips SQLAlchemy's per-execution overhead (cache lookup, execution
context, result objects), which costs more CPU than the database itself. Batches of
several entries take the SQLAlchemy statements (ids in parameter order).

Retransmissions. A known ``dedup_key`` is a retransmission, answered with the stored
ACK. For an entry with ``dedup_by_content`` (HL7 v2 over MLLP: listener, MSH-3, MSH-4,
MSH-10) it is one only when the content is the same too, compared line by line whatever
the line terminators (:func:`content_lines`). A different content under a known key is
a sender that reused a control id: it is journaled as a new message under a content key
(``<key>|content:<keyed hash of its lines>``, so that its own retransmissions are found
by one exact lookup), with an ``id_reused`` event in its journey and a ``warn`` anomaly
for its sending facility, in the same transaction; a retransmission leaves a
``retransmitted`` event on the original (``_ingest_events``). The unique index on ``dedup_key``
stays the last guard between engine nodes: of two racing inserts of one key, one fails
and is run again by the writer (see ``_writer``), which then finds the other.
The first message of a key is stored under the plain key (as before content keys
existed), so journals written earlier need no migration: a plain key's content is
read back from its sealed payload when, and only when, the key comes again.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Dialect, bindparam, insert, select
from sqlalchemy.sql.elements import ColumnElement

from eai.messages import IngestResult, JournalEntry
from eai.order_key import order_key
from eai.store._bodies import MESSAGE_PAYLOAD, set_aside, store_message_bodies
from eai.store._crypto import Cipher
from eai.store._driver_sql import DriverStatement
from eai.store._ingest_events import record_retransmissions, record_reuses
from eai.store._schema import events, messages

__all__ = ["ack_code", "content_lines", "insert_entries", "naive_utc"]


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


# -- batches of several entries: SQLAlchemy statements, built once ----------------

_KNOWN = select(messages.c.dedup_key, messages.c.id, messages.c.ack).where(
    messages.c.dedup_key.in_(bindparam("b_keys", expanding=True))
)
_INSERT_MESSAGES = insert(messages).returning(messages.c.id, sort_by_parameter_order=True)
_INSERT_EVENTS = insert(events)

# -- one entry: the same statements, compiled once per dialect to driver SQL -------

_MESSAGE_COLUMNS = (
    "listener",
    "received_at",
    "content_type",
    "status",
    "peer",
    "control_id",
    "message_type",
    "sending_application",
    "sending_facility",
    "dedup_key",
    "size",
    "payload",
    "ack",
    "reject_reason",
    "routes",
    "order_key",
)


def _bind(name: str, column: ColumnElement[Any]) -> Any:
    # An explicit type: a bindparam without one would get no type processor.
    return bindparam(name, type_=column.type)


_KNOWN_ONE = select(messages.c.id, messages.c.ack).where(
    messages.c.dedup_key == _bind("dedup_key", messages.c.dedup_key)
)
_INSERT_MESSAGE_ONE = (
    insert(messages)
    .values({name: _bind(name, messages.c[name]) for name in _MESSAGE_COLUMNS})
    .returning(messages.c.id)
)
# A message's two events ("received", then "acknowledged"/"rejected"), in this order.
_INSERT_EVENTS_ONE = insert(events).values(
    [
        {
            "at": _bind("at", events.c.at),
            "message_id": _bind("message_id", events.c.message_id),
            "kind": _bind(f"kind{n}", events.c.kind),
            "detail": _bind(f"detail{n}", events.c.detail),
        }
        for n in (1, 2)
    ]
)


class _OneEntry:
    """The statements journaling one entry, compiled for one dialect."""

    __slots__ = ("__weakref__", "events", "known", "message")

    def __init__(self, dialect: Dialect) -> None:
        self.known = DriverStatement(_KNOWN_ONE, dialect, (messages.c.id, messages.c.ack))
        self.message = DriverStatement(_INSERT_MESSAGE_ONE, dialect, (messages.c.id,))
        self.events = DriverStatement(_INSERT_EVENTS_ONE, dialect)


_compiled: weakref.WeakKeyDictionary[Dialect, _OneEntry] = weakref.WeakKeyDictionary()


def _one_entry(dialect: Dialect) -> _OneEntry:
    stmts = _compiled.get(dialect)
    if stmts is None:
        stmts = _compiled[dialect] = _OneEntry(dialect)
    return stmts


# -- journaling -------------------------------------------------------------------


def _message_row(cipher: Cipher, e: JournalEntry, dedup_key: str | None) -> dict[str, Any]:
    # The ordering key is read here rather than by each listener: every content type and
    # listener gets one (or ""), keyed with the journal's identifier hash key.
    return {
        "listener": e.listener,
        "received_at": naive_utc(e.received_at),
        "content_type": e.content_type,
        "status": e.status,
        "peer": e.peer[:128],
        "control_id": e.control_id[:128],
        "message_type": e.message_type[:32],
        "sending_application": e.sending_application[:128],
        "sending_facility": e.sending_facility[:128],
        "dedup_key": dedup_key,
        "size": _size(e),
        "payload": cipher.seal(e.payload),
        "ack": e.ack,
        "reject_reason": e.reject_reason,
        "routes": "",
        "order_key": order_key(e.payload, cipher.hash_id),
    }


def _size(e: JournalEntry) -> int:
    """What the sender sent: the payload, or the content it refers to (DICOM)."""
    return len(e.payload) if e.content_size is None else e.content_size


def _event_details(e: JournalEntry) -> tuple[str, str, str]:
    """(received detail, second event's kind, its detail) of a journaled entry."""
    received = f"listener={e.listener} bytes={_size(e)} peer={e.peer}"
    kind = "rejected" if e.status == "rejected" else "acknowledged"
    detail = f"status={e.answered}" if e.answered and not e.ack else f"ack={ack_code(e.ack)}"
    if e.reject_reason:
        detail += f" reason={e.reject_reason}"
    return received, kind, detail


SMALL_BATCH = 16
"""Up to this many entries, a batch runs the one-entry driver statements once per entry:
cheaper than one SQLAlchemy statement for all (its fixed cost per execution is what a
few senders' batches of 2 to 8 entries would pay, every commit)."""


def _known_keys(conn: Connection, keys: list[str]) -> dict[str, tuple[int, bytes]]:
    if len(keys) <= SMALL_BATCH:
        known = _one_entry(conn.dialect).known
        found: dict[str, tuple[int, bytes]] = {}
        for key in keys:
            row = known.execute(conn, {"dedup_key": key})
            if row is not None:
                found[key] = (row[0], row[1])
        return found
    return {r.dedup_key: (r.id, r.ack) for r in conn.execute(_KNOWN, {"b_keys": keys})}


def _insert_one(conn: Connection, row: dict[str, Any], e: JournalEntry) -> int:
    stmts = _one_entry(conn.dialect)
    returned = stmts.message.execute(conn, row)
    assert returned is not None
    mid = int(returned[0])
    received, kind, detail = _event_details(e)
    stmts.events.execute(
        conn,
        {
            "at": row["received_at"],
            "message_id": mid,
            "kind1": "received",
            "detail1": received,
            "kind2": kind,
            "detail2": detail,
        },
    )
    return mid


def _insert_many(
    conn: Connection, rows: list[dict[str, Any]], journaled: list[JournalEntry]
) -> list[int]:
    ids = list(conn.execute(_INSERT_MESSAGES, rows).scalars())
    event_rows: list[dict[str, object]] = []
    for mid, row, e in zip(ids, rows, journaled, strict=True):
        at = row["received_at"]
        received, kind, detail = _event_details(e)
        event_rows.append({"at": at, "message_id": mid, "kind": "received", "detail": received})
        event_rows.append({"at": at, "message_id": mid, "kind": kind, "detail": detail})
    conn.execute(_INSERT_EVENTS, event_rows)
    return ids


_EOL = re.compile(rb"[\r\n]+")


def content_lines(payload: bytes) -> bytes:
    """``payload``'s lines joined by CR: what two copies of one message share whatever
    their line terminators (CR as HL7 v2 says, LF, CRLF), blank lines and a missing or
    doubled final terminator."""
    return b"\r".join(line for line in _EOL.split(payload) if line)


def _content_key(cipher: Cipher, key: str, lines: bytes) -> str:
    """The dedup key of a message that reuses ``key`` with the content ``lines``.

    A keyed hash (the identifier HMAC key) of the SHA-256 of the lines: the journal's
    metadata cannot be used to test a guess of a payload, and a sender cannot compute
    the key of another message's content."""
    return f"{key}|content:{cipher.hash_id(hashlib.sha256(lines).hexdigest())}"


_PAYLOAD_OF = select(MESSAGE_PAYLOAD).where(messages.c.id == bindparam("b_id"))


class _Holder:
    """The message that already holds a dedup key: journaled (``message_id``) or earlier
    in the batch (``position``, its ``payload`` at hand)."""

    __slots__ = ("_lines", "ack", "message_id", "payload", "position")

    def __init__(
        self,
        *,
        message_id: int | None = None,
        ack: bytes = b"",
        position: int | None = None,
        payload: bytes | None = None,
    ) -> None:
        self.message_id = message_id
        self.ack = ack
        self.position = position
        self.payload = payload
        self._lines: bytes | None = None

    def lines(self, conn: Connection, cipher: Cipher) -> bytes:
        if self._lines is None:
            payload = self.payload
            if payload is None:  # a journaled message: read its sealed payload back
                sealed = conn.execute(_PAYLOAD_OF, {"b_id": self.message_id}).scalar_one()
                payload = cipher.open(bytes(sealed))
            self._lines = content_lines(payload)
        return self._lines


def _content_keys(
    conn: Connection,
    cipher: Cipher,
    entries: list[JournalEntry],
    known: dict[str, tuple[int, bytes]],
) -> tuple[dict[int, bytes], dict[int, str], dict[str, tuple[int, bytes]]]:
    """For the content-checked entries whose key is journaled: their lines, their content
    keys (by position), and the content keys already journaled (one lookup)."""
    lines: dict[int, bytes] = {}
    ckeys: dict[int, str] = {}
    for i, e in enumerate(entries):
        if e.dedup_by_content and e.dedup_key in known:
            lines[i] = content_lines(e.payload)
            ckeys[i] = _content_key(cipher, e.dedup_key, lines[i])
    found = _known_keys(conn, list(dict.fromkeys(ckeys.values()))) if ckeys else {}
    return lines, ckeys, found


def insert_entries(
    conn: Connection, cipher: Cipher, entries: list[JournalEntry]
) -> list[IngestResult]:
    """Journals ``entries``; a retransmission returns the stored ACK (see the module doc)."""
    if not conn.in_transaction():
        conn.begin()  # what conn.execute would do (autobegin); the caller commits
    keys = [e.dedup_key for e in entries if e.dedup_key]
    known = _known_keys(conn, keys) if keys else {}
    lines, ckeys, known_content = _content_keys(conn, cipher, entries, known)

    results: list[IngestResult | None] = [None] * len(entries)
    holders: dict[str, _Holder] = {
        k: _Holder(message_id=mid, ack=ack) for k, (mid, ack) in {**known, **known_content}.items()
    }
    later_copies: list[tuple[int, int]] = []
    reused: list[tuple[int, _Holder]] = []  # (position of the new message, earlier holder)
    rows_to_insert: list[dict[str, Any]] = []
    positions: list[int] = []

    def copy_of(i: int, holder: _Holder) -> None:
        if holder.position is None:
            assert holder.message_id is not None
            results[i] = IngestResult(holder.message_id, duplicate=True, stored_ack=holder.ack)
        else:
            later_copies.append((i, holder.position))

    for i, e in enumerate(entries):
        key = e.dedup_key
        if key:
            holder = holders.get(key)
            if holder is not None and not e.dedup_by_content:
                copy_of(i, holder)
                continue
            if holder is not None:
                mine = lines.get(i)
                if mine is None:
                    mine = lines[i] = content_lines(e.payload)
                ckey = ckeys.get(i) or _content_key(cipher, key, mine)
                if ckey in holders:  # a retransmission of a message that reused the key
                    copy_of(i, holders[ckey])
                    continue
                if holder.lines(conn, cipher) == mine:
                    copy_of(i, holder)
                    continue
                reused.append((i, holder))
                key = ckey
            holders[key] = _Holder(position=i, payload=e.payload)
        positions.append(i)
        rows_to_insert.append(_message_row(cipher, e, key))
    aside = set_aside(rows_to_insert)
    if len(rows_to_insert) <= SMALL_BATCH:
        pairs = zip(rows_to_insert, positions, strict=True)
        ids = [_insert_one(conn, row, entries[p]) for row, p in pairs]
    else:
        ids = _insert_many(conn, rows_to_insert, [entries[p] for p in positions])
    store_message_bodies(conn, ids, aside)
    inserted = dict(zip(positions, ids, strict=True))
    for pos, mid in inserted.items():
        results[pos] = IngestResult(message_id=mid)
    reuses: list[tuple[int, int, JournalEntry]] = []
    for pos, holder in reused:
        earlier = holder.message_id if holder.position is None else inserted[holder.position]
        assert earlier is not None
        results[pos] = IngestResult(message_id=inserted[pos], reuses=earlier)
        reuses.append((inserted[pos], earlier, entries[pos]))
    record_reuses(conn, reuses)
    for i, first in later_copies:
        res = results[first]
        assert res is not None
        results[i] = IngestResult(
            message_id=res.message_id, duplicate=True, stored_ack=entries[first].ack
        )
    done = [r for r in results if r is not None]
    record_retransmissions(
        conn,
        [
            (r.message_id, e, ack_code(r.stored_ack))
            for r, e in zip(done, entries, strict=True)
            if r.duplicate
        ],
    )
    return done
