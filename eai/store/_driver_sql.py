"""Statements compiled once per dialect and run on the DBAPI cursor of a connection.

Touches: DB (runs the statement on the caller's connection, inside its transaction).

The journal's hot path (one entry per batch, see ``_journal``) runs through them: no
SQLAlchemy per-execution overhead (cache lookup, execution context, result objects),
the same type processing and the same exceptions as ``conn.execute``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

__all__ = ["DriverStatement", "wrap_dbapi_error"]


class DriverStatement:
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
        params: Sequence[Any] | Mapping[str, Any]
        if self._positional:  # one pass: each bound value read and processed in place
            procs = self._processors
            params = tuple(
                [
                    values[n] if (proc := procs.get(n)) is None else proc(values[n])
                    for n in self._names
                ]
            )
        elif self._processors:
            params = {
                k: (proc(v) if (proc := self._processors.get(k)) is not None else v)
                for k, v in values.items()
            }
        else:
            params = values
        dbapi_conn = conn.connection.dbapi_connection
        assert dbapi_conn is not None
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall() if cursor.description is not None else ()
        except conn.dialect.loaded_dbapi.Error as exc:
            raise wrap_dbapi_error(conn, self.sql, params, exc, cursor) from exc
        finally:
            cursor.close()
        row = rows[0] if rows else None
        if row is None or not any(self._results):
            return None if row is None else tuple(row)
        return tuple(
            proc(v) if proc is not None else v for proc, v in zip(self._results, row, strict=True)
        )


def wrap_dbapi_error(
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
