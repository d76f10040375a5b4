"""The one-entry journal statements (driver SQL, eai/store/_journal.py) on PostgreSQL:
same rows as the SQLAlchemy statements, same retransmission and failure semantics.
The checks are those of tests/unit/test_journal_fast_insert.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from eai.errors import StoreError
from eai.store import Store, insert_entries
from tests._journal_checks import (
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

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

_REFUSE_BAD = [
    """CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF (SELECT control_id FROM messages WHERE id = NEW.message_id) = 'bad' THEN
        RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation';
      END IF;
      RETURN NEW;
    END $$""",
    "CREATE TRIGGER refuse_bad BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_bad()",
]


@pytest.fixture
def store(fresh_postgres_db: str, tmp_path: Path) -> Iterator[Store]:
    s = Store(fresh_postgres_db, tmp_path, os.urandom(32).hex())
    yield s
    s.close()


def _refuse_bad(store: Store) -> None:
    with store.engine.begin() as c:
        for sql in _REFUSE_BAD:
            c.exec_driver_sql(sql)


def test_single_entry_reads_back_like_a_batched_one(store: Store) -> None:
    check_single_entry_reads_back_like_a_batched_one(store)


def test_native_types(store: Store) -> None:
    (one,) = journal(store, [entry("native")])
    with store.engine.connect() as c:
        types = c.exec_driver_sql(
            "SELECT pg_typeof(received_at)::text, pg_typeof(payload)::text, "
            "pg_typeof(ack)::text, pg_typeof(size)::text FROM messages WHERE id = %(id)s",
            {"id": one.message_id},
        ).one()
    assert tuple(types) == ("timestamp without time zone", "bytea", "bytea", "integer")
    assert message_row(store, one.message_id)["ack"] == b"MSH|^~\\&|\rMSA|AA|native"


def test_duplicates(store: Store) -> None:
    check_duplicates(store)


def test_batch_ids_follow_entry_order(store: Store) -> None:
    check_batch_ids_follow_entry_order(store)


def test_failed_write_rolls_back_its_transaction(store: Store) -> None:
    _refuse_bad(store)
    check_failed_write_rolls_back_its_transaction(store)


def test_writer_isolates_a_failing_entry(store: Store) -> None:
    _refuse_bad(store)
    check_writer_isolates_a_failing_entry(store)


def test_lost_connection_is_invalidated_and_the_writer_reconnects(
    store: Store, postgres_server: object
) -> None:
    dsn = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def terminate(pid: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    # directly: SQLAlchemy's OperationalError, the connection marked invalidated
    with store.engine.connect() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        conn.rollback()
        terminate(pid)
        conn.begin()
        with pytest.raises(OperationalError) as info:
            insert_entries(conn, store.cipher, [entry("lost-0")])
        assert info.value.connection_invalidated
        assert conn.invalidated
        conn.rollback()
        assert journal(store, [entry("lost-0")])[0].duplicate is False

    # through the writer: this entry fails, the next one is journaled on a new connection
    store.start()
    pid = store.writer.run_sync(lambda c: c.exec_driver_sql("SELECT pg_backend_pid()").scalar())
    terminate(pid)
    with pytest.raises(StoreError, match="terminating connection") as failed:
        store.writer.journal_blocking(entry("lost-1"), 10)
    assert isinstance(failed.value.__cause__, OperationalError)
    res = store.writer.journal_blocking(entry("lost-2"), 10)
    assert message_row(store, res.message_id)["control_id"] == "lost-2"
    assert counts(store) == (2, 4)
