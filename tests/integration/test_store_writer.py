"""The writer thread: group commit, retransmission detection, failure isolation."""

import asyncio
import concurrent.futures
import threading
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from eai.errors import StoreError
from eai.messages import JournalEntry
from eai.store import Store
from eai.store.schema import events, messages
from tests._database import database_url
from tests._journal_db import refuse_inserts


def _entry(i: int, key: str | None = "auto", status: str = "received") -> JournalEntry:
    return JournalEntry(
        listener="l1",
        payload=f"MSH|^~\\&|A|F|||||ADT^A01|{i}|P|2.5".encode(),
        received_at=datetime.now(UTC),
        status=status,  # type: ignore[arg-type]
        dedup_key=f"l1|A|F|{i}" if key == "auto" else key,
        control_id=str(i),
        message_type="ADT^A01",
        ack=f"MSH|^~\\&|\rMSA|AA|{i}".encode(),
    )


@pytest.fixture
def store(tmp_path):
    s = Store(database_url(tmp_path / "j.db"), tmp_path, None)
    s.start()
    yield s
    s.close()


def test_concurrent_ingests_share_commits(store):
    async def go():
        return await asyncio.gather(*(store.ingest(_entry(i)) for i in range(400)))

    results = asyncio.run(go())
    assert len({r.message_id for r in results}) == 400
    assert not any(r.duplicate for r in results)
    assert store.writer.commits < 400  # grouped
    with store.engine.connect() as c:
        assert c.execute(select(messages.c.id)).all().__len__() == 400
        kinds = {r.kind for r in c.execute(select(events.c.kind))}
    assert kinds == {"received", "acknowledged"}


def test_retransmission_returns_stored_ack(store):
    async def go():
        first = await store.ingest(_entry(7))
        again = await store.ingest(_entry(7))
        # two copies inside one group commit
        a, b = await asyncio.gather(store.ingest(_entry(8)), store.ingest(_entry(8)))
        return first, again, a, b

    first, again, a, b = asyncio.run(go())
    assert again.duplicate and again.message_id == first.message_id
    assert again.stored_ack.endswith(b"MSA|AA|7")
    assert {a.duplicate, b.duplicate} == {False, True}
    assert a.message_id == b.message_id


def test_payload_encrypted_in_db(store):
    asyncio.run(store.ingest(_entry(1)))
    with store.engine.connect() as c:
        raw = c.execute(select(messages.c.payload)).scalar_one()
    assert b"ADT^A01" not in raw
    assert store.cipher.open(raw).startswith(b"MSH|")


def test_failing_write_is_isolated_and_reported(store):
    def boom(conn):
        raise RuntimeError("bad op")

    async def go():
        return await asyncio.gather(
            store.ingest(_entry(1)),
            store.writer.run(boom),
            store.ingest(_entry(2)),
            return_exceptions=True,
        )

    a, b, c = asyncio.run(go())
    assert isinstance(b, StoreError)
    assert not isinstance(a, BaseException) and not isinstance(c, BaseException)


def test_unwritable_journal_raises_store_error(tmp_path):
    s = Store(database_url(tmp_path / "j.db"), tmp_path, None)
    s.start()
    try:
        with s.engine.begin() as c:
            refuse_inserts(c, "messages", "disk full")
        with pytest.raises(StoreError, match="journal write failed"):
            asyncio.run(s.ingest(_entry(1)))
    finally:
        s.close()


def test_wrong_key_refused_at_open(tmp_path):
    import os

    s = Store(database_url(tmp_path / "j.db"), tmp_path, os.urandom(32).hex())
    s.close()
    with pytest.raises(StoreError, match="another key"):
        Store(database_url(tmp_path / "j.db"), tmp_path, os.urandom(32).hex())


def test_missing_indexes_are_recreated_at_open(tmp_path):
    from sqlalchemy import inspect

    s = Store(database_url(tmp_path / "j.db"), tmp_path, None)
    with s.engine.begin() as c:
        c.exec_driver_sql("DROP INDEX ix_messages_dedup")
    s.close()
    s = Store(database_url(tmp_path / "j.db"), tmp_path, None)
    try:
        names = {ix["name"] for ix in inspect(s.engine).get_indexes("messages")}
        assert "ix_messages_dedup" in names
    finally:
        s.close()


@pytest.mark.sqlite_only  # a lock on the SQLite file, and its busy timeout
def test_locked_journal_fails_the_whole_batch_at_once(tmp_path):
    import sqlite3
    import time

    from sqlalchemy import event

    s = Store(f"sqlite:///{tmp_path}/j.db", tmp_path, None)
    s.engine.dispose()

    @event.listens_for(s.engine, "connect")
    def _short_busy_timeout(dbapi_conn, _record):  # runs after the engine's own pragmas
        dbapi_conn.execute("PRAGMA busy_timeout=500")

    s.start()
    locker = sqlite3.connect(f"{tmp_path}/j.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:

        async def go():
            return await asyncio.gather(
                *(s.ingest(_entry(i)) for i in range(5)), return_exceptions=True
            )

        t0 = time.monotonic()
        res = asyncio.run(go())
        elapsed = time.monotonic() - t0
    finally:
        locker.rollback()
        locker.close()
        s.close()
    assert all(isinstance(r, StoreError) for r in res)
    assert elapsed < 2.5  # about one busy timeout, not one per write


def _committed_ids(store: Store) -> set[str]:
    with store.engine.connect() as c:
        return {r.control_id for r in c.execute(select(messages.c.control_id))}


def test_before_commit_runs_after_the_rows_are_written_and_before_the_commit(store):
    seen: list[set[str]] = []

    def before() -> None:
        seen.append(_committed_ids(store))  # another connection: only committed rows

    res = store.ingest_blocking(_entry(1), 5, before)
    assert seen == [set()]  # called, and nothing was committed yet
    assert not res.duplicate
    assert _committed_ids(store) == {"1"}


def test_before_commit_failure_fails_only_its_entry(store):
    gate = threading.Event()

    def slow(conn):  # keeps the writer busy so that the next writes group together
        gate.wait(5)

    def refuse() -> None:
        raise StoreError("spool file not durable")

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        busy = pool.submit(store.writer.run_sync, slow)
        good = pool.submit(store.ingest_blocking, _entry(1), 5)
        bad = pool.submit(store.ingest_blocking, _entry(2), 5, refuse)
        other = pool.submit(store.ingest_blocking, _entry(3), 5, lambda: None)
        time.sleep(0.2)  # all three queued behind the busy write
        gate.set()
        busy.result(5)
        with pytest.raises(StoreError, match="spool file not durable"):
            bad.result(5)
        assert not good.result(5).duplicate
        assert not other.result(5).duplicate
    assert _committed_ids(store) == {"1", "3"}
    # the refused entry left nothing behind: sent again, it is journaled, not a duplicate
    assert not store.ingest_blocking(_entry(2), 5).duplicate


def _thread_of_commit(store: Store, i: int) -> str:
    """The name of the thread that ran entry ``i``'s transaction (via before_commit)."""
    seen: list[str] = []
    store.ingest_blocking(_entry(i), 5, lambda: seen.append(threading.current_thread().name))
    return seen[0]


@pytest.mark.sqlite_only  # callers commit inline on SQLite only (Store: combine)
def test_an_idle_writer_lets_the_caller_commit_its_own_entry(store):
    assert store.writer.inline == 0
    caller = threading.current_thread().name
    assert _thread_of_commit(store, 1) == caller
    assert store.writer.inline == 1
    assert _committed_ids(store) == {"1"}
    # the writer's connection goes on serving the thread and the callers alike
    asyncio.run(store.ingest(_entry(2)))
    assert _thread_of_commit(store, 3) == caller
    assert _committed_ids(store) == {"1", "2", "3"}


def test_a_busy_writer_takes_the_entry_in_its_next_group(store):
    gate = threading.Event()
    started = threading.Event()

    def slow(conn):
        started.set()
        gate.wait(5)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        busy = pool.submit(store.writer.run_sync, slow)
        assert started.wait(5)
        first = pool.submit(_thread_of_commit, store, 1)
        second = pool.submit(_thread_of_commit, store, 2)
        time.sleep(0.2)
        assert not first.done() and not second.done()  # waiting, not running beside it
        commits = store.writer.commits
        gate.set()
        busy.result(5)
        assert first.result(5) == second.result(5) == "eai-writer"
    assert store.writer.commits == commits + 2  # the slow write, then both entries at once
    assert store.writer.inline == 0


@pytest.mark.sqlite_only  # callers commit inline on SQLite only (Store: combine)
def test_an_inline_failure_is_the_callers_alone_and_the_connection_goes_on(store):
    def refuse() -> None:
        raise StoreError("spool file not durable")

    with pytest.raises(StoreError, match="spool file not durable"):
        store.ingest_blocking(_entry(1), 5, refuse)
    assert _committed_ids(store) == set()
    assert not store.ingest_blocking(_entry(1), 5).duplicate
    assert store.ingest_blocking(_entry(1), 5).duplicate
    assert store.writer.inline == 3


def test_without_combining_every_entry_goes_through_the_thread(tmp_path):
    s = Store(database_url(tmp_path / "j.db"), tmp_path, None)
    s.writer._combine = False  # as on PostgreSQL
    s.start()
    try:
        assert _thread_of_commit(s, 1) == "eai-writer"
        assert s.writer.inline == 0
    finally:
        s.close()


def test_a_stopped_writer_runs_nothing_inline(tmp_path):
    s = Store(database_url(tmp_path / "j.db"), tmp_path, None)
    s.start()
    s.close()
    with pytest.raises(TimeoutError):
        s.ingest_blocking(_entry(1), 0.2)
    assert s.writer.inline == 0
