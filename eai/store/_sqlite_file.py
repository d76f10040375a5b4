"""The SQLite journal's file and connection settings, shared by both of its readers.

Touches: files (creates the SQLite file 0600 and its directory 0700, tightens modes).

``_db`` opens the journal through SQLAlchemy, ``_sqlite_read`` through ``sqlite3`` alone:
both set up the file and each connection with these, so neither imports the other (this
module imports no SQLAlchemy).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from eai.errors import StoreError

__all__ = ["KEY_MISMATCH", "private_files", "sqlite_pragmas"]

KEY_MISMATCH = (
    "this journal was written with another key: set EAI_KEY or restore "
    "the eai.key file of its data_dir"
)


def sqlite_pragmas(dbapi_conn: Any, _record: Any = None) -> None:
    """Each new connection's settings (an SQLAlchemy ``connect`` event handler)."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: every commit fsyncs the WAL, so an acknowledged message survives power loss.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def private_files(db: Path) -> None:
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
