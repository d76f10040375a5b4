"""The tests' one way to read or alter an engine's journal, on SQLite or PostgreSQL.

Touches: DB (the journal named by a routes.yaml or a URL), files (may point a routes.yaml
at the PostgreSQL test database, :func:`tests._database.on_test_database`).

A test that looks into the journal behind the engine's back (the audit rows it wrote, a
trigger that makes an insert fail) opens it with :func:`journal_db`, through SQLAlchemy
and the URL the engine uses, whatever ``EAI_TEST_DATABASE`` says: never with ``sqlite3``
on ``var/eai.db``, which is not where the journal is on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from sqlalchemy import Connection, create_engine, text

from tests._database import on_test_database

__all__ = ["allow_inserts", "journal_db", "engine_journal_url", "refuse_inserts"]


def engine_journal_url(config: Path) -> str:
    """The SQLAlchemy URL the engine of the routes.yaml at ``config`` journals to (its
    ``engine.database``, or ``<data_dir>/eai.db``; a relative SQLite path is taken from
    the file's folder, where the tests run ``eai``)."""
    loaded = yaml.safe_load(on_test_database(config).read_text()) or {}
    engine = loaded.get("engine") or {}
    data_dir = str(engine.get("data_dir", "./var"))
    url = str(engine.get("database") or f"sqlite:///{data_dir}/eai.db")
    if url.startswith("sqlite:///"):
        return f"sqlite:///{config.parent / url.removeprefix('sqlite:///')}"
    return url


@contextmanager
def journal_db(where: Path | str) -> Iterator[Connection]:
    """A connection to the journal of a routes.yaml (a ``Path``) or at a URL (a ``str``),
    in one transaction committed on a clean exit."""
    url = engine_journal_url(where) if isinstance(where, Path) else where
    sqlite = url.startswith("sqlite:")
    engine = create_engine(url, connect_args={"timeout": 10} if sqlite else {})
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        engine.dispose()


def refuse_inserts(conn: Connection, table: str, message: str, when: str = "TRUE") -> None:
    """Makes every insert into ``table`` (those matching the SQL condition ``when`` on
    ``NEW``) fail with ``message``, as a full disk would; undone by :func:`allow_inserts`.
    The failure is an ``IntegrityError`` on both backends (SQLite's ``RAISE(ABORT)``, a
    class 23 error on PostgreSQL)."""
    name = f"eai_test_refuse_{table}"
    if conn.dialect.name == "sqlite":
        conn.execute(
            text(
                f"CREATE TRIGGER {name} BEFORE INSERT ON {table} WHEN {when} "
                f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            )
        )
        return
    conn.execute(
        text(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN RAISE EXCEPTION '{message}' "
            "USING ERRCODE = 'integrity_constraint_violation'; END $$"
        )
    )
    conn.execute(
        text(
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW WHEN ({when}) "
            f"EXECUTE FUNCTION {name}()"
        )
    )


def allow_inserts(conn: Connection, table: str) -> None:
    """Undoes :func:`refuse_inserts` on ``table``."""
    name = f"eai_test_refuse_{table}"
    if conn.dialect.name == "sqlite":
        conn.execute(text(f"DROP TRIGGER {name}"))
        return
    conn.execute(text(f"DROP TRIGGER {name} ON {table}"))
    conn.execute(text(f"DROP FUNCTION {name}()"))
