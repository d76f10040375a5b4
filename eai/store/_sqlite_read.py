"""Lists a journal's messages for ``eai messages list``: on SQLite through ``sqlite3`` alone.

Touches: DB (reads; opens the SQLite file), files (the key file, the journal's modes).

SQLAlchemy's import is most of that command's start-up (about 0.2 s of CPU), so a SQLite
journal that needs no preparing is read with the standard library's ``sqlite3``: the
statements of ``_listing`` compiled ahead of time (``_listing_sql``), the rows made into
views by the same code (``_listing_views``). Any other case goes through
:class:`eai.store.Store` and :func:`eai.store.list_messages` as before: a PostgreSQL
journal, an unusual SQLite URL, a file that does not exist yet or lacks a table, a
column or an index (``_db`` creates them), a journal without its key check yet, a
listing by ``where_field`` (it scans payloads page by page), and any ``sqlite3`` error
(the SQLAlchemy path then reports it as it always has).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from eai.errors import StoreError
from eai.store._crypto import Cipher, load_master_key
from eai.store._listing_sql import (
    DATETIME_STORAGE,
    DELIVERIES,
    DELIVERY_DATETIMES,
    FILTERS,
    INDEXES,
    KEY_CHECK,
    MESSAGE_DATETIMES,
    MESSAGES,
    PAYLOADS,
    TABLES,
    WHERE,
)
from eai.store._listing_views import (
    FieldReader,
    Filters,
    MessageView,
    collect,
    message_filters,
)
from eai.store._sqlite_file import KEY_MISMATCH, private_files, sqlite_pragmas

__all__ = ["read_messages", "sqlite_file"]

_PREFIX = "sqlite:///"


def sqlite_file(database: str) -> Path | None:
    """The file of a plain ``sqlite:///PATH`` URL (relative to the cwd, as SQLAlchemy
    opens it); None for any other URL (another driver, in memory, a query string, an
    escape), which only SQLAlchemy reads."""
    if not database.startswith(_PREFIX):
        return None
    rest = database.removeprefix(_PREFIX)
    if not rest or rest == ":memory:" or any(c in rest for c in "?#%"):
        return None
    return Path(rest)


def read_messages(
    database: str,
    data_dir: Path,
    key: str | None,
    *,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    listener: str | None = None,
    message_type: str | None = None,
    patient: str | None = None,
    where_field: tuple[str, str] | None = None,
    limit: int | None = 100,
) -> list[MessageView]:
    """:func:`eai.store.list_messages` of the journal at ``database`` (key from ``key``,
    else ``data_dir``'s key file), opened as :class:`eai.store.Store` opens it."""
    filters: dict[str, Any] = {
        "status": status,
        "since": since,
        "until": until,
        "listener": listener,
        "message_type": message_type,
        "patient": patient,
    }
    path = sqlite_file(database)
    if path is not None and where_field is None and path.is_file():
        rows = _read_sqlite(path, Cipher(load_master_key(data_dir, key)), filters, limit)
        if rows is not None:
            return rows
    from eai.store import Store
    from eai.store._listing import list_messages

    store = Store(database, data_dir, key)
    try:
        return list_messages(
            store.engine, store.cipher, where_field=where_field, limit=limit, **filters
        )
    finally:
        store.engine.dispose()


def _read_sqlite(
    path: Path, cipher: Cipher, filters: dict[str, Any], limit: int | None
) -> list[MessageView] | None:
    """The listing, or None when the journal is not ready for this reader."""
    private_files(path)
    try:
        conn = sqlite3.connect(path, timeout=10, check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        sqlite_pragmas(conn)
        if not _prepared(conn):
            return None
        queries = _SqliteQueries(conn)
        stored = queries.run(KEY_CHECK, {}, ())
        if not stored:
            return None  # the first start writes it
        if stored[0].value != cipher.key_check():
            raise StoreError(KEY_MISMATCH)
        return collect(
            queries,
            FieldReader(cipher),
            message_filters(cipher, **filters),
            limit=limit,
            oldest_first=False,
        )
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _prepared(conn: sqlite3.Connection) -> bool:
    """Whether every table, column and index of the schema is there: ``_db`` would then
    add nothing (it creates what is missing, by name, and never changes the rest)."""
    found: dict[str, set[str]] = {}
    for table, column in conn.execute(
        "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p "
        "WHERE m.type = 'table'"
    ):
        found.setdefault(table, set()).add(column)
    if any(not set(columns.split()) <= found.get(t, set()) for t, columns in TABLES.items()):
        return False
    indexes = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    return set(INDEXES) <= indexes


_EXPANDING = re.compile(r"__\[POSTCOMPILE_(\w+)\]")


def _storage(value: Any) -> Any:
    """A parameter as SQLAlchemy binds it for SQLite (a DateTime is a string there)."""
    if isinstance(value, datetime):
        return DATETIME_STORAGE % {
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    return value


class _SqliteQueries:
    """The listing's reads through ``sqlite3`` (:class:`eai.store._listing_views.Queries`)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def run(
        self, statement: tuple[str, dict[str, Any]], params: dict[str, Any], dates: Sequence[str]
    ) -> list[Any]:
        """Rows with their columns as attributes, ``dates`` read as SQLAlchemy reads a
        DateTime; a list parameter is expanded (``IN``), as SQLAlchemy does."""
        sql, constants = statement
        values: dict[str, Any] = dict(constants)
        for name, value in params.items():
            if isinstance(value, list):
                names = [f"{name}_{i}" for i in range(1, len(value) + 1)]
                values.update(zip(names, value, strict=True))
                sql = sql.replace(f"__[POSTCOMPILE_{name}]", ", ".join(f":{n}" for n in names))
            else:
                values[name] = _storage(value)
        if _EXPANDING.search(sql):
            raise ValueError(f"no list given for {_EXPANDING.findall(sql)}")
        cursor = self.conn.execute(sql, values)
        columns = [d[0] for d in cursor.description]
        rows = []
        for row in cursor:
            item = dict(zip(columns, row, strict=True))
            for name in dates:
                if item[name] is not None:
                    item[name] = datetime.fromisoformat(item[name])
            rows.append(SimpleNamespace(**item))
        return rows

    def messages(self, filters: Filters, oldest_first: bool, limit: int | None) -> list[Any]:
        sql, constants = MESSAGES[(bool(filters), oldest_first, bool(limit))]
        params: dict[str, Any] = {}
        if filters:
            sql = sql.replace(WHERE, " AND ".join(f"({FILTERS[name]})" for name, _ in filters))
            for _, values in filters:
                params.update(values)
        if limit:
            params["limit"] = limit
        return self.run((sql, constants), params, MESSAGE_DATETIMES)

    def payloads(self, ids: Sequence[int]) -> list[tuple[int, bytes]]:
        return [(r.id, r.payload) for r in self.run(PAYLOADS, {"ids": list(ids)}, ())]

    def deliveries(self, ids: Sequence[int]) -> list[Any]:
        return self.run(DELIVERIES, {"ids": list(ids)}, DELIVERY_DATETIMES)
