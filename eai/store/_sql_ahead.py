"""Compiles the listing's SQLAlchemy statements for SQLite ahead of time, into ``_listing_sql``.

Touches: files (with ``--write``, ``eai/store/_listing_sql.py``; else prints it).

``eai messages list`` on a SQLite journal runs them through ``sqlite3`` (``_sqlite_read``)
without importing SQLAlchemy; the statements themselves stay in ``_listing`` (and the
schema in ``_schema``), the one source of truth: after changing either, run

    .venv/bin/python -m eai.store._sql_ahead --write

``tests/unit/test_sqlite_read.py`` fails while the file differs from what this renders.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sqlalchemy import ClauseElement, DateTime, Table, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql.compiler import SQLCompiler

from eai.store import _schema
from eai.store._db import KEY_CHECK
from eai.store._listing import DELIVERIES, FILTERS, PAYLOADS, messages_select
from eai.store._schema import ACTIVE_DELIVERY, deliveries, messages, metadata

__all__ = ["TARGET", "render"]

TARGET = Path(__file__).with_name("_listing_sql.py")

WHERE = "{where}"
"""Where the filters go in the messages' statements (``(f1) AND (f2)``, see
``_sqlite_read``)."""

_DIALECT = sqlite.dialect(paramstyle="named")
"""pysqlite's dialect with named parameters (``:name``, which ``sqlite3`` takes as well):
the filters' fragments can then be joined without renumbering their parameters."""


def _compile(stmt: ClauseElement) -> tuple[str, dict[str, Any]]:
    """The SQL and the parameters whose values the statement holds (``OFFSET 0``...)."""
    compiled = stmt.compile(dialect=_DIALECT)
    assert isinstance(compiled, SQLCompiler)
    constants = {k: v for k, v in compiled.params.items() if v is not None}
    return compiled.string, constants


def _schema_tables() -> list[Table]:
    """The tables of ``_schema``, in creation order: those that ``Store`` prepares when only
    the listing's modules are imported (``_audit`` adds its own to the same metadata when
    it is imported, which ``eai messages list`` never does)."""
    own = {t.name for t in vars(_schema).values() if isinstance(t, Table)}
    return [t for t in metadata.sorted_tables if t.name in own]


def _datetimes(table: Table) -> tuple[str, ...]:
    return tuple(c.name for c in table.columns if isinstance(c.type, DateTime))


def _literal(value: Any) -> str:
    if isinstance(value, str):  # as ruff formats it: double quotes unless the text has some
        return repr(value) if '"' in value and "'" not in value else json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "(" + ", ".join(_literal(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _statement(stmt: ClauseElement, indent: str = "") -> str:
    sql, constants = _compile(stmt)
    return f"(\n{indent}    {_literal(sql)},\n{indent}    {_literal(constants)},\n{indent})"


def render() -> str:
    """The text of ``_listing_sql.py``."""
    storage = messages.c.received_at.type.dialect_impl(_DIALECT)._storage_format  # type: ignore[attr-defined]
    out = [
        '"""The listing\'s SQL for SQLite, compiled ahead of time by ``eai.store._sql_ahead``.',
        "",
        "Touches: nothing. Generated: do not edit (``python -m eai.store._sql_ahead --write``).",
        '"""',
        "",
        "# ruff: noqa: E501",
        "from __future__ import annotations",
        "",
        "from typing import Any",
        "",
        "Statement = tuple[str, dict[str, Any]]",
        '"""SQL with named parameters, and the values of those the statement holds."""',
        "",
        f"ACTIVE_DELIVERY = {_literal(ACTIVE_DELIVERY)}",
        f"DATETIME_STORAGE = (\n    {_literal(storage)}\n)",
        '"""How SQLAlchemy stores a DateTime in SQLite (a string: compared as one)."""',
        "",
        f"WHERE = {_literal(WHERE)}",
        "MESSAGES: dict[tuple[bool, bool, bool], Statement] = {",
    ]
    for where in (False, True):
        for oldest_first in (False, True):
            for limit in (False, True):
                stmt = messages_select(text(WHERE) if where else None, oldest_first, limit)
                out.append(f"    ({where}, {oldest_first}, {limit}): {_statement(stmt, '    ')},")
    out += [
        "}",
        '"""By (filtered, oldest first, limited): ``_listing.messages_select``."""',
        "FILTERS: dict[str, str] = {",
    ]
    for name, clause in FILTERS.items():
        sql, constants = _compile(clause)
        assert not constants, name
        out.append(f"    {_literal(name)}: {_literal(sql)},")
    out += [
        "}",
        f"PAYLOADS: Statement = {_statement(PAYLOADS)}",
        f"DELIVERIES: Statement = {_statement(DELIVERIES)}",
        f"KEY_CHECK: Statement = {_statement(KEY_CHECK)}",
        f"MESSAGE_DATETIMES = {_literal(_datetimes(messages))}",
        f"DELIVERY_DATETIMES = {_literal(_datetimes(deliveries))}",
        "TABLES: dict[str, str] = {",
    ]
    for table in _schema_tables():
        columns = " ".join(c.name for c in table.columns)
        out.append(f"    {_literal(table.name)}: {_literal(columns)},")
    out += [
        "}",
        '"""The columns of each table, space-separated: a journal lacking one is prepared',
        'by ``_db`` first."""',
        "INDEXES = (",
    ]
    for table in _schema_tables():
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            out.append(f"    {_literal(index.name)},")
    out += [")", ""]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {TARGET.name}")
    args = parser.parse_args()
    if args.write:
        TARGET.write_text(render())
    else:
        print(render(), end="")


if __name__ == "__main__":
    main()
