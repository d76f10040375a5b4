"""The process an MLLP listener with ``own_process`` serves in: read, journal, acknowledge.

Touches: network (binds the listener's socket), DB (the journal, through its own
connection), processes (runs as the child of :mod:`connectors.mllp.own_process`).

The listener here is the same :class:`~connectors.mllp.listener.MllpListener` as in the
engine's process, with the same promise: a block is answered only after its entry is
committed (this process's own writer thread groups the commits). The engine learns what
was journaled from an :class:`~eai.ingest_report.IngestReport` sent every few
milliseconds (counts, answer latencies, log records; never content), and its pipeline
claims the new messages from the journal as it claims any others.

The pipe to the engine says ``("ready", port)`` or ``("error", text)`` once, then
``("report", IngestReport)`` while serving, and ``("stopped",)`` at the end. The engine
sends ``("stop", grace)``; its end of the pipe closing (the engine died) or a SIGTERM
stops this process too, with a short grace: what it acknowledged is committed, the
blocks it did not answer are the senders' to resend.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import threading
from collections.abc import Mapping
from multiprocessing.connection import Connection

from connectors.mllp.listener import MllpListener, MllpListenerConfig
from eai import child_logs
from eai.ingest_report import IngestReport
from eai.messages import IngestResult, JournalEntry
from eai.store import JournalAccess, Store

__all__ = ["main"]

log = logging.getLogger("connectors.mllp.listener")

REPORT_EVERY = 0.005
"""Seconds between reports while the listener journals (the pipeline's wake-up delay)."""

ORPHAN_GRACE = 1.0
"""Seconds to finish the blocks in hand when the engine is gone (no stop message)."""

BIND_RETRY = 5.0
"""Seconds to retry a port still held (by the process this one replaces, finishing)."""


class _Reporter:
    """Gathers this process's :class:`IngestReport` and sends it on the loop's thread."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._report = IngestReport()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due: asyncio.TimerHandle | None = None
        self.gone = False
        """The engine's end of the pipe is closed."""

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._schedule()

    def journaled(self, status: str, duplicate: bool) -> None:
        with self._lock:
            self._report.journaled[(status, duplicate)] += 1
        self._schedule()

    def failed(self) -> None:
        with self._lock:
            self._report.failed += 1
        self._schedule()

    def observe(self, seconds: float) -> None:
        """:class:`eai.metrics.Observer` for the listener's answer latencies."""
        with self._lock:
            self._report.ack_seconds.append(seconds)

    def record(self, record: logging.LogRecord) -> None:
        """A log record, from any thread."""
        with self._lock:
            self._report.records.append(record)
        loop = self._loop
        if loop is None:
            return  # sent once the loop runs (bind)
        try:
            loop.call_soon_threadsafe(self._schedule)
        except RuntimeError:
            pass  # the loop is closed: the last flush has run

    def _schedule(self) -> None:
        if self._due is None and self._loop is not None:
            self._due = self._loop.call_later(REPORT_EVERY, self.flush)

    def flush(self) -> None:
        if self._due is not None:
            self._due.cancel()
            self._due = None
        with self._lock:
            report, self._report = self._report, IngestReport()
        if report:
            self.send(("report", report))

    def send(self, message: tuple[object, ...]) -> None:
        if self.gone:
            return
        try:
            self._conn.send(message)
        except (OSError, ValueError):
            self.gone = True


class _Journal:
    """The listener's :data:`eai.registry.Ingest`: this process's writer thread (its
    group commits), then a count for the engine."""

    def __init__(self, store: Store, reporter: _Reporter) -> None:
        self._store = store
        self._reporter = reporter

    async def __call__(self, entry: JournalEntry) -> IngestResult:
        try:
            result = await self._store.ingest(entry)
        except Exception:
            self._reporter.failed()
            raise
        self._reporter.journaled(entry.status, result.duplicate)
        return result


def bound_to(config: MllpListenerConfig, port: int) -> MllpListenerConfig:
    """``config`` listening on ``port`` (the port a restarted process keeps)."""
    host = config.host
    where = f"[{host}]" if ":" in host else host
    return config.model_copy(update={"bind": f"{where}:{port}"})


def main(
    conn: Connection,
    config: MllpListenerConfig,
    access: JournalAccess,
    port: int,
    levels: Mapping[str, int],
) -> None:
    """The process's entry point (``multiprocessing``, spawned)."""
    # Ctrl-C in a terminal reaches the whole process group: the engine stops this
    # process itself, with its grace.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    reporter = _Reporter(conn)
    child_logs.forward(reporter.record, levels)
    try:
        asyncio.run(_serve(conn, bound_to(config, port), access, reporter))
    finally:
        conn.close()


async def _serve(
    conn: Connection, config: MllpListenerConfig, access: JournalAccess, reporter: _Reporter
) -> None:
    loop = asyncio.get_running_loop()
    reporter.bind(loop)
    try:
        store = Store.attach(access)
    except Exception as exc:  # noqa: BLE001 - said to the engine, which raises it
        reporter.flush()
        reporter.send(("error", f"listener {config.name}: cannot open the journal: {exc}"))
        return
    store.start()
    try:
        listener = MllpListener(config, _Journal(store, reporter), ack_seconds=reporter)
        try:
            await _listen(listener)
        except OSError as exc:
            reporter.flush()
            reporter.send(
                ("error", f"listener {config.name}: cannot listen on {config.bind}: {exc}")
            )
            return
        await _until_stopped(conn, listener, reporter)
    finally:
        await asyncio.to_thread(store.close)  # the writer finishes what it holds
        log.info(
            "listener %s: its process journaled %d entries in %d commits",
            config.name,
            store.writer.writes,
            store.writer.commits,
        )
        reporter.flush()
        reporter.send(("stopped",))


async def _listen(listener: MllpListener) -> None:
    """Binds, retrying a port in use for :data:`BIND_RETRY` s."""
    deadline = asyncio.get_running_loop().time() + BIND_RETRY
    while True:
        try:
            await listener.start()
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _until_stopped(conn: Connection, listener: MllpListener, reporter: _Reporter) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    grace = [ORPHAN_GRACE]

    def from_engine() -> None:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            reporter.gone = True
            log.warning(
                "listener %s: the engine is gone; stopping its process", listener.config.name
            )
            stop.set()
            return
        if message[0] == "stop":
            grace[0] = float(message[1])
            stop.set()

    loop.add_reader(conn.fileno(), from_engine)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    reporter.send(("ready", listener.port))
    try:
        await stop.wait()
    finally:
        if not reporter.gone:
            loop.remove_reader(conn.fileno())
    await listener.stop(grace[0])
