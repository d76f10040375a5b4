"""Journaling one entry runs driver SQL compiled once per dialect (eai/store/_journal.py):
the rows it writes must be those the SQLAlchemy statements (batches of several entries)
write, read back identically, with the same retransmission and failure semantics.

The ``check_*`` helpers (tests/_journal_checks.py) take a Store and run on any backend; the
PostgreSQL cases in tests/integration/test_journal_fast_insert_postgres.py run them too.

SQLite only (``sqlite_only``): SQLite's fast insert path, its text, its locked file.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from eai.errors import StoreError
from eai.store import Store, insert_entries
from tests._journal_checks import (
    TIMES,
    check_batch_ids_follow_entry_order,
    check_duplicates,
    check_failed_write_rolls_back_its_transaction,
    check_single_entry_reads_back_like_a_batched_one,
    check_writer_isolates_a_failing_entry,
    counts,
    entry,
    journal,
    message_row,
)

pytestmark = pytest.mark.sqlite_only


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path}/j.db", tmp_path, os.urandom(32).hex())
    yield s
    s.close()


_SQLITE_TRIGGER = (
    "CREATE TRIGGER refuse_bad BEFORE INSERT ON events "
    "WHEN (SELECT control_id FROM messages WHERE id = NEW.message_id) = 'bad' "
    "BEGIN SELECT RAISE(ABORT, 'refused'); END"
)


def test_single_entry_reads_back_like_a_batched_one(store: Store) -> None:
    check_single_entry_reads_back_like_a_batched_one(store)


def test_sqlite_stores_the_text_sqlalchemy_writes(store: Store) -> None:
    (one,) = journal(store, [entry("raw-1", at=TIMES[1])])
    ref = journal(store, [entry("raw-2", at=TIMES[1]), entry("raw-3", at=TIMES[0])])
    with store.engine.connect() as c:
        raw = c.exec_driver_sql(
            "SELECT id, received_at, typeof(received_at), typeof(payload), typeof(ack) "
            "FROM messages ORDER BY id"
        ).all()
        raw_events = c.exec_driver_sql(
            "SELECT message_id, at, typeof(at), typeof(message_id) FROM events ORDER BY id"
        ).all()
    assert raw[0] == (one.message_id, "2024-03-10 01:02:03.000000", "text", "blob", "blob")
    assert raw[1][1:] == raw[0][1:]
    assert raw[1][0] == ref[0].message_id
    assert raw[2][1] == "2024-03-09 23:59:58.123456"
    assert raw_events[:2] == [(one.message_id, "2024-03-10 01:02:03.000000", "text", "integer")] * 2
    assert raw_events[2][1:] == raw_events[0][1:]


def test_duplicates(store: Store) -> None:
    check_duplicates(store)


def test_batch_ids_follow_entry_order(store: Store) -> None:
    check_batch_ids_follow_entry_order(store)


def test_failed_write_rolls_back_its_transaction(store: Store) -> None:
    with store.engine.begin() as c:
        c.exec_driver_sql(_SQLITE_TRIGGER)
    check_failed_write_rolls_back_its_transaction(store)


def test_writer_isolates_a_failing_entry(store: Store) -> None:
    with store.engine.begin() as c:
        c.exec_driver_sql(_SQLITE_TRIGGER)
    check_writer_isolates_a_failing_entry(store)


def test_journaling_outside_a_transaction_is_committed_by_the_caller(store: Store) -> None:
    with store.engine.connect() as conn:
        (res,) = insert_entries(conn, store.cipher, [entry("autobegin")])
        assert conn.in_transaction()
        conn.commit()
    assert message_row(store, res.message_id)["control_id"] == "autobegin"


def test_locked_journal_raises_the_operational_error_sqlalchemy_would(
    store: Store, tmp_path: Path
) -> None:
    """The writer fails a whole batch at once on an OperationalError (journal
    unavailable): the one-entry statements must raise SQLAlchemy's exception too."""
    store.engine.dispose()

    @event.listens_for(store.engine, "connect")
    def _short_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=200")

    locker = sqlite3.connect(f"{tmp_path}/j.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(OperationalError, match="locked") as info:
            journal(store, [entry("locked")])
        assert isinstance(info.value.orig, sqlite3.OperationalError)
        assert "INSERT INTO messages" in str(info.value.statement)
        store.start()
        with pytest.raises(StoreError, match=r"OperationalError: database is locked"):
            store.writer.journal_blocking(entry("locked"), 10)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert store.writer.journal_blocking(entry("locked"), 10).duplicate is False
    assert counts(store) == (1, 2)
