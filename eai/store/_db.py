"""Opens the journal database (SQLite in WAL mode, or PostgreSQL) and creates its schema.

Touches: DB, files (creates the SQLite file 0600 and its directory 0700).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateColumn

from eai.errors import StoreError
from eai.store._crypto import Cipher
from eai.store._schema import meta, metadata
from eai.store._sqlite_file import KEY_MISMATCH, private_files, sqlite_pragmas
from eai.store._write_lock import WriteLock

__all__ = [
    "KEY_CHECK",
    "is_sqlite",
    "open_engine",
    "prepare_schema",
    "sqlite_file",
    "sqlite_write_lock",
]

KEY_CHECK = select(meta.c.value).where(meta.c.key == "key_check")
"""The journal's key check (:meth:`eai.store.Cipher.key_check`), written by the first start."""


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def sqlite_file(url: str | URL) -> Path | None:
    """The file of an SQLite journal's URL (None: another database, or SQLite in memory);
    relative to the cwd, as SQLite opens it. Raises SQLAlchemy's ArgumentError on a URL
    it cannot parse."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def sqlite_write_lock(engine: Engine) -> WriteLock | None:
    """The write lock of a SQLite journal file (None: PostgreSQL, or SQLite in memory)."""
    db = sqlite_file(engine.url)
    return None if db is None else WriteLock(db.with_name(db.name + "-writer.lock"))


def open_engine(url: str) -> Engine:
    """An SQLAlchemy engine for ``url``; relative SQLite paths are relative to the cwd."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several kinds here
        raise StoreError(f"invalid database URL: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        db = sqlite_file(parsed)
        if db is not None:
            private_files(db)
        engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
        event.listen(engine, "connect", sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)


def _add_new_columns(conn: Connection) -> None:
    """A journal made by an older version lacks the columns added since: they are all
    nullable (NULL = "as before"), added here with ALTER TABLE ... ADD COLUMN."""
    found = inspect(conn)
    for table in metadata.sorted_tables:
        have = {c["name"] for c in found.get_columns(table.name)}
        for column in table.columns:
            if column.name in have:
                continue
            if not column.nullable:
                raise StoreError(
                    f"the journal's table {table.name} lacks column {column.name}, "
                    "which cannot be added to existing rows"
                )
            ddl = CreateColumn(column).compile(dialect=conn.dialect)
            # IF NOT EXISTS: another node may be adding it at the same time (PostgreSQL)
            guard = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {guard}{ddl}")


_SCHEMA_LOCK = zlib.crc32(b"eai:schema")


@contextmanager
def _schema_lock(engine: Engine) -> Iterator[None]:
    """On PostgreSQL, one node at a time creates or migrates the schema: a session-level
    advisory lock held on a connection of its own. Without it, two nodes started at the
    same moment on an empty database both ran CREATE TABLE and one failed on PostgreSQL's
    catalog (a duplicate ``pg_type`` key). SQLite: one engine per journal (eai.lock)."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _SCHEMA_LOCK})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _SCHEMA_LOCK})
            conn.commit()


def prepare_schema(engine: Engine, cipher: Cipher) -> None:
    """Creates missing tables (under the schema lock) and checks that the key matches
    the journal's."""
    try:
        with _schema_lock(engine):  # the first node also writes the key check
            _create_schema(engine)
            _check_key(engine, cipher)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot open the journal: {type(exc).__name__}") from exc


def _create_schema(engine: Engine) -> None:
    metadata.create_all(engine)
    with engine.begin() as conn:
        # The columns first: an index may be on a new column (ix_messages_received_key).
        _add_new_columns(conn)
        # create_all skips the indexes of a table that exists: a start killed between
        # CREATE TABLE and CREATE INDEX must not lose the unique dedup index for good.
        for table in metadata.sorted_tables:
            for index in table.indexes:
                index.create(conn, checkfirst=True)


def _check_key(engine: Engine, cipher: Cipher) -> None:
    with engine.begin() as conn:
        stored = conn.execute(KEY_CHECK).scalar()
        if stored is None:
            conn.execute(meta.insert().values(key="key_check", value=cipher.key_check()))
        elif stored != cipher.key_check():
            raise StoreError(KEY_MISMATCH)
