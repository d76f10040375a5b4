"""Writes journal entries (raw messages + their acknowledgement) in one grouped insert.

Touches: DB (called on the writer thread, inside its transaction).

This is the listeners' hot path: a sender that waits for each answer makes batches of
one entry. Those statements are compiled once per dialect (:class:`_DriverStatement`)
and run on the DBAPI cursor of the caller's connection, inside its transaction, with
the parameters converted by the same SQLAlchemy type processors a ``conn.execute``
would apply; this skips SQLAlchemy's per-execution overhead (cache lookup, execution
context, result objects), which costs more CPU than the database itself. Batches of
several entries take the SQLAlchemy statements (ids in parameter order).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Dialect, bindparam, insert, select
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

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


class _DriverStatement:
    """A statement compiled for one dialect, run on the connection's DBAPI cursor.

    Parameters go through the bind processors of their SQLAlchemy types (e.g. SQLite
    stores a DateTime as the string SQLAlchemy writes), results through the result
    processors of ``result_types``: rows read back identically through SQLAlchemy.
    """

    __slots__ = ("_names", "_positional", "_processors", "_results", "sql")

    def __init__(
        self, stmt: ClauseElement, dialect: Dialect, result_types: Sequence[ColumnElement[Any]] = ()
    ) -> None:
        compiled = stmt.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("a driver statement cannot have parameters rendered at execution")
        self.sql = compiled.string
        binds = compiled.binds
        escaped = getattr(compiled, "escaped_bind_names", None)
        if escaped:
            raise ValueError(f"bind names need escaping: {sorted(escaped)}")
        self._positional = bool(compiled.positional)
        if self._positional:
            assert compiled.positiontup is not None
            self._names: tuple[str, ...] = tuple(compiled.positiontup)
        else:
            self._names = tuple(binds)
        self._processors: dict[str, Callable[[Any], Any]] = {}
        for name in set(self._names):
            proc = binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                self._processors[name] = proc
        self._results: tuple[Callable[[Any], Any] | None, ...] = tuple(
            col.type.dialect_impl(dialect).result_processor(dialect, None) for col in result_types
        )

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Runs the statement with ``values`` (by bind name); returns its first row, if any."""
        if self._processors:
            values = {
                k: (proc(v) if (proc := self._processors.get(k)) is not None else v)
                for k, v in values.items()
            }
        params: Sequence[Any] | Mapping[str, Any] = (
            tuple([values[n] for n in self._names]) if self._positional else values
        )
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall() if cursor.description is not None else ()
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrap_dbapi_error(conn, self.sql, params, exc, cursor) from exc
        finally:
            cursor.close()
        row = rows[0] if rows else None
        if row is None or not any(self._results):
            return None if row is None else tuple(row)
        return tuple(
            proc(v) if proc is not None else v for proc, v in zip(self._results, row, strict=True)
        )


def _wrap_dbapi_error(
    conn: Connection, sql: str, params: Any, exc: Any, cursor: Any
) -> StatementError:
    """The exception ``conn.execute`` would raise (an IntegrityError, OperationalError...);
    a lost connection is invalidated, as SQLAlchemy does."""
    dialect = conn.dialect
    dbapi_conn = conn.connection.dbapi_connection
    try:
        lost = bool(dialect.is_disconnect(exc, dbapi_conn, cursor))
    except Exception:  # noqa: BLE001 - deciding must not hide the original error
        lost = False
    err: StatementError = DBAPIError.instance(
        sql,
        params,
        exc,
        dialect.loaded_dbapi.Error,
        hide_parameters=conn.engine.hide_parameters,
        connection_invalidated=lost,
        dialect=dialect,
    )
    if lost:
        conn.invalidate(exc)
    return err


class _OneEntry:
    """The statements journaling one entry, compiled for one dialect."""

    __slots__ = ("__weakref__", "events", "known", "message")

    def __init__(self, dialect: Dialect) -> None:
        self.known = _DriverStatement(_KNOWN_ONE, dialect, (messages.c.id, messages.c.ack))
        self.message = _DriverStatement(_INSERT_MESSAGE_ONE, dialect, (messages.c.id,))
        self.events = _DriverStatement(_INSERT_EVENTS_ONE, dialect)


_compiled: weakref.WeakKeyDictionary[Dialect, _OneEntry] = weakref.WeakKeyDictionary()


def _one_entry(dialect: Dialect) -> _OneEntry:
    stmts = _compiled.get(dialect)
    if stmts is None:
        stmts = _compiled[dialect] = _OneEntry(dialect)
    return stmts


# -- journaling -------------------------------------------------------------------


def _message_row(cipher: Cipher, e: JournalEntry) -> dict[str, Any]:
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
        "dedup_key": e.dedup_key,
        "size": len(e.payload),
        "payload": cipher.seal(e.payload),
        "ack": e.ack,
        "reject_reason": e.reject_reason,
        "routes": "",
    }


def _event_details(e: JournalEntry) -> tuple[str, str, str]:
    """(received detail, second event's kind, its detail) of a journaled entry."""
    received = f"listener={e.listener} bytes={len(e.payload)} peer={e.peer}"
    kind = "rejected" if e.status == "rejected" else "acknowledged"
    detail = f"ack={ack_code(e.ack)}"
    if e.reject_reason:
        detail += f" reason={e.reject_reason}"
    return received, kind, detail


def _known_keys(conn: Connection, keys: list[str]) -> dict[str, tuple[int, bytes]]:
    if len(keys) == 1:
        row = _one_entry(conn.dialect).known.execute(conn, {"dedup_key": keys[0]})
        return {} if row is None else {keys[0]: (row[0], row[1])}
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


def insert_entries(
    conn: Connection, cipher: Cipher, entries: list[JournalEntry]
) -> list[IngestResult]:
    """Journals ``entries``; a retransmission (known dedup key) returns the stored ACK."""
    if not conn.in_transaction():
        conn.begin()  # what conn.execute would do (autobegin); the caller commits
    keys = [e.dedup_key for e in entries if e.dedup_key]
    known = _known_keys(conn, keys) if keys else {}

    results: list[IngestResult | None] = [None] * len(entries)
    first_in_batch: dict[str, int] = {}
    later_copies: list[tuple[int, int]] = []
    rows_to_insert: list[dict[str, Any]] = []
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
        rows_to_insert.append(_message_row(cipher, e))
    if len(rows_to_insert) == 1:
        ids = [_insert_one(conn, rows_to_insert[0], entries[positions[0]])]
    elif rows_to_insert:
        ids = _insert_many(conn, rows_to_insert, [entries[p] for p in positions])
    else:
        ids = []
    for pos, mid in zip(positions, ids, strict=True):
        results[pos] = IngestResult(message_id=mid)
    for i, first in later_copies:
        res = results[first]
        assert res is not None
        results[i] = IngestResult(
            message_id=res.message_id, duplicate=True, stored_ack=entries[first].ack
        )
    return [r for r in results if r is not None]
