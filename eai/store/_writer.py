"""The one writer thread that owns journal writes and groups commits.

Touches: DB.

Listeners, the pipeline and delivery workers hand their writes to this thread
and wait on a future. The thread takes everything queued, runs it in ONE
transaction and commits once (one fsync for many senders: group commit), then
resolves the futures: a listener acknowledges only after its future resolved.
When journal entries are queued together with other work (pipeline, delivery),
the entries get their own transaction first, so that an acknowledgement never
waits for that work.
If a grouped transaction fails, each write is retried alone so that one bad
write cannot fail its neighbours; a write that alone hits a unique-key conflict (two
engine nodes journaling one dedup key at once) is run once more, and then finds the
other node's row.
A journal entry may carry a ``before_commit`` callable, run after the rows are
written and before the commit: the DICOM listener's spool fsync runs while this
thread writes the rows, and the commit still comes after the file is durable.

With ``combine``, a listener on its own thread (:meth:`Writer.journal_blocking`)
that finds the writer idle and nothing queued runs its transaction itself, on the writer's
connection under the writer's lock (flat combining): a sender that waits for
each answer saves the two thread hand-offs of a round trip through the queue.
When the writer is busy, the entry is queued and joins the next group commit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from time import perf_counter
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from eai.errors import EaiError, StoreError
from eai.messages import IngestResult, JournalEntry
from eai.metrics import journal_commit

__all__ = ["Writer"]

log = logging.getLogger(__name__)

T = TypeVar("T")
JournalBatch = Callable[[Connection, list[JournalEntry]], list[IngestResult]]


@dataclass(slots=True)
class _Item:
    work: JournalEntry | Callable[[Connection], Any]
    future: asyncio.Future[Any] | concurrent.futures.Future[Any]
    loop: asyncio.AbstractEventLoop | None
    before_commit: Callable[[], object] | None = None


_STOP = object()


class Writer:
    """Runs writes on one thread, grouping them into shared commits."""

    def __init__(
        self,
        engine: Engine,
        journal_batch: JournalBatch,
        *,
        max_batch: int = 512,
        combine: bool = False,
    ):
        self._engine = engine
        self._write_lock: AbstractContextManager[object] = nullcontext()
        self._combine = combine
        self._journal_batch = journal_batch
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        """Held while a transaction runs on ``_conn`` (by the thread or a combining caller)."""
        self._conn: Connection | None = None
        self.inline = 0
        """Journal entries committed by their own caller's thread (flat combining)."""
        self.commits = 0
        self.writes = 0

    def hold_around_transactions(self, lock: AbstractContextManager[object]) -> None:
        """Holds ``lock`` around each transaction from the next one on (the SQLite
        journal's lock across processes, :class:`eai.store._write_lock.WriteLock`)."""
        self._write_lock = lock

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="eai-writer", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finishes what is queued, then stops the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    async def journal(self, entry: JournalEntry) -> IngestResult:
        """Journals ``entry``; returns after the commit. Raises StoreError."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[IngestResult] = loop.create_future()
        self._queue.put(_Item(entry, fut, loop))
        return await fut

    def journal_blocking(
        self,
        entry: JournalEntry,
        timeout: float,
        before_commit: Callable[[], object] | None = None,
    ) -> IngestResult:
        """Same as :meth:`journal`, for listeners on their own threads (no event-loop hop).
        Raises StoreError, or TimeoutError when no commit came within ``timeout`` s (the
        entry may still be committed later).

        With ``combine`` and the writer idle, the transaction runs on this thread (its
        waits are then the database's own, not ``timeout``).

        ``before_commit`` runs after the entry's rows are written, before the
        transaction commits; if it raises, the entry fails and is not committed (the
        rest of its group is retried without it)."""
        fut: concurrent.futures.Future[IngestResult] = concurrent.futures.Future()
        item = _Item(entry, fut, None, before_commit)
        if self._combine and self._lock.acquire(blocking=False):
            try:
                conn = self._conn
                if conn is not None and self._queue.empty():
                    self._conn = self._execute(conn, [item])
                    self.inline += 1
                    return fut.result(0)
            finally:
                self._lock.release()
        self._queue.put(item)
        return fut.result(timeout)

    async def run(self, op: Callable[[Connection], T]) -> T:
        """Runs ``op(conn)`` inside a grouped transaction; returns after the commit."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Item(op, fut, loop))
        return await fut

    def run_sync(self, op: Callable[[Connection], T], timeout: float | None = None) -> T:
        """Same as :meth:`run`, for callers on other threads (TimeoutError after
        ``timeout`` s: ``op`` may still run later)."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put(_Item(op, fut, None))
        return fut.result(timeout)

    # -- the thread -------------------------------------------------------

    def _run(self) -> None:
        with self._lock:
            self._conn = self._engine.connect()
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                with self._lock:
                    conn = self._conn
                    assert conn is not None
                    batch, stop = self._drain(first)  # type: ignore[arg-type]
                    entries = [it for it in batch if isinstance(it.work, JournalEntry)]
                    if entries and len(entries) < len(batch):
                        conn = self._execute(conn, entries)
                        batch = [it for it in batch if not isinstance(it.work, JournalEntry)]
                    self._conn = self._execute(conn, batch)
                if stop:
                    return
        finally:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

    def _drain(self, first: _Item) -> tuple[list[_Item], bool]:
        """``first`` and what is queued behind it (up to ``max_batch``); True when the
        stop marker was among them."""
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return batch, True
            batch.append(nxt)  # type: ignore[arg-type]
        return batch, False

    def _execute(self, conn: Connection, batch: list[_Item]) -> Connection:
        try:
            results = self._apply(conn, batch)
        except Exception as exc:  # noqa: BLE001 - isolate, then retry one by one
            journal_commit(None)
            conn = self._reset(conn)
            if isinstance(exc, OperationalError) or (
                len(batch) == 1 and not isinstance(exc, IntegrityError)
            ):
                # The journal itself is unavailable (locked, disk full, connection lost):
                # retrying each write would make every waiter wait again. Fail them all now.
                err = self._wrap(exc)
                self._resolve([(item, None, err) for item in batch])
                return conn
            if len(batch) > 1:
                log.warning(
                    "grouped commit of %d writes failed (%s); retrying one by one",
                    len(batch),
                    type(exc).__name__,
                )
            # Each write alone: a group's bad write must not fail its neighbours, and a
            # lone write that hit a unique-key conflict gets its second try (another
            # engine node committed the same dedup key between this write's lookup and
            # its insert; the lookup now finds that row: a retransmission, or a reused
            # control id).
            for item in batch:
                try:
                    self._resolve([(item, self._apply(conn, [item])[0], None)])
                except Exception as one_exc:  # noqa: BLE001
                    conn = self._reset(conn)
                    self._resolve([(item, None, self._wrap(one_exc))])
            return conn
        self._resolve([(item, res, None) for item, res in zip(batch, results, strict=True)])
        return conn

    def _apply(self, conn: Connection, batch: list[_Item]) -> list[Any]:
        entries = [(i, it.work) for i, it in enumerate(batch) if isinstance(it.work, JournalEntry)]
        results: list[Any] = [None] * len(batch)
        started = perf_counter()
        with self._write_lock, conn.begin():
            if entries:
                ingested = self._journal_batch(conn, [e for _, e in entries])
                for (i, _), res in zip(entries, ingested, strict=True):
                    results[i] = res
            for i, it in enumerate(batch):
                if not isinstance(it.work, JournalEntry):
                    results[i] = it.work(conn)
            for it in batch:
                if it.before_commit is not None:
                    it.before_commit()
        journal_commit(perf_counter() - started)
        self.commits += 1
        self.writes += len(batch)
        return results

    def _reset(self, conn: Connection) -> Connection:
        try:
            if conn.in_transaction():
                conn.rollback()
            return conn
        except Exception:  # noqa: BLE001 - the connection is broken: open a new one
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
            return self._engine.connect()

    @staticmethod
    def _wrap(exc: BaseException) -> BaseException:
        if isinstance(exc, EaiError):
            return exc
        if isinstance(exc, SQLAlchemyError):
            orig = getattr(exc, "orig", None)
            detail = f"{type(orig).__name__}: {orig}" if orig is not None else type(exc).__name__
            err = StoreError(f"journal write failed ({detail})")
        else:
            err = StoreError(f"journal write failed ({type(exc).__name__})")
        err.__cause__ = exc
        return err

    @staticmethod
    def _resolve(done: list[tuple[_Item, Any, BaseException | None]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, Any, BaseException | None]]] = {}
        for item, res, exc in done:
            if item.loop is None:
                cf = item.future
                assert isinstance(cf, concurrent.futures.Future)
                if exc is not None:
                    cf.set_exception(exc)
                else:
                    cf.set_result(res)
            else:
                by_loop.setdefault(item.loop, []).append((item, res, exc))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, items)
            except RuntimeError:  # loop closed: nobody waits any more
                pass


def _settle(items: list[tuple[_Item, Any, BaseException | None]]) -> None:
    for item, res, exc in items:
        fut = item.future
        assert isinstance(fut, asyncio.Future)
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(res)
