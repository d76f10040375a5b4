"""Opens the journal database (SQLite in WAL mode, or PostgreSQL) and creates its schema.

Touches: DB, files (creates the SQLite file 0600 and its directory 0700).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateColumn

from eai.errors import StoreError
from eai.store._crypto import Cipher
from eai.store._schema import meta, metadata

__all__ = ["is_sqlite", "open_engine", "prepare_schema"]


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: every commit fsyncs the WAL, so an acknowledged message survives power loss.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _private_files(db: Path) -> None:
    """The SQLite file, its WAL and shared-memory files: 0600 (metadata in clear: control
    ids, document ids, UIDs).

    SQLite creates ``-wal`` and ``-shm`` with the main file's mode, whatever the umask,
    so the main file is created 0600 before SQLite opens it; files of an older install
    that are open to others are tightened when they are ours.
    """
    db.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
    except OSError as exc:
        raise StoreError(f"cannot create the journal {db}: {exc.strerror}") from exc
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            path.chmod(0o600)


def open_engine(url: str) -> Engine:
    """An SQLAlchemy engine for ``url``; relative SQLite paths are relative to the cwd."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy raises several kinds here
        raise StoreError(f"invalid database URL: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            _private_files(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
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
        # create_all skips the indexes of a table that exists: a start killed between
        # CREATE TABLE and CREATE INDEX must not lose the unique dedup index for good.
        for table in metadata.sorted_tables:
            for index in table.indexes:
                index.create(conn, checkfirst=True)
        _add_new_columns(conn)


def _check_key(engine: Engine, cipher: Cipher) -> None:
    with engine.begin() as conn:
        stored = conn.execute(select(meta.c.value).where(meta.c.key == "key_check")).scalar()
        if stored is None:
            conn.execute(meta.insert().values(key="key_check", value=cipher.key_check()))
        elif stored != cipher.key_check():
            raise StoreError(
                "this journal was written with another key: set EAI_KEY or restore "
                "the eai.key file of its data_dir"
            )
