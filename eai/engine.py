"""The running engine: wires listeners, the journal, the pipeline and delivery workers.

Touches: DB, network, files (data_dir lock), signals.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import signal
import socket
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from eai.admin import AdminServer
from eai.anomaly_mail import AnomalyMailer
from eai.config import Config
from eai.delivery import DeliveryWorker
from eai.errors import StoreError
from eai.messages import IngestResult, JournalEntry
from eai.net import run_blocking
from eai.pipeline import Pipeline
from eai.reconciler import Reconciler
from eai.registry import Listener, build_destination, build_listener, periodic_jobs
from eai.store import Store, clear_leases, settlement
from identity.pdqm import IdentityServerClient

__all__ = ["Engine", "lease_problems"]

log = logging.getLogger(__name__)


def _private_data_dir(data_dir: Path, group_traverses: bool) -> None:
    """The data dir is the engine's alone (0700): journal, key, spool, admin socket.

    :class:`eai.admin.AdminServer` lets ``engine.admin_group`` traverse it (0710) when
    the socket is inside: that bit is left as it is.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = data_dir.stat()
    if st.st_uid == os.geteuid() and st.st_mode & (0o067 if group_traverses else 0o077):
        log.warning("data_dir %s was open to others (%o): now 0700", data_dir, st.st_mode & 0o777)
        data_dir.chmod(0o700)


def _lock_data_dir(data_dir: Path) -> IO[str]:
    """One engine per SQLite journal: a second one would corrupt ordering guarantees."""
    fd = os.open(data_dir / "eai.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    f = os.fdopen(fd, "r+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        f.close()
        raise StoreError(f"another engine is running on {data_dir} (eai.lock is held)") from exc
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def lease_problems(config: Config) -> list[str]:
    """Destinations whose longest send (connect + response timeouts, from their declared
    :class:`eai.messages.SendLimits`) outlasts the delivery lease: on several nodes,
    another one could claim and send the row again while the first still waits."""
    lease = config.engine.lease
    return [
        f"destination {d.name}: one send may take {d.send_limits().longest_send:g} s, "
        f"longer than engine.lease ({lease:g} s): another node may send it again meanwhile"
        for d in config.destinations
        if d.send_limits().longest_send >= lease
    ]


class _JournalView:
    """:class:`eai.registry.JournalView` over the store (reads in a worker thread)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def settled(self, dedup_keys: Sequence[str], before: datetime) -> Mapping[str, bool]:
        return await run_blocking(settlement, self._store.engine, dedup_keys, before)


class _Ingest:
    """The listeners' :class:`eai.registry.ThreadIngest`: journal, then wake the pipeline."""

    def __init__(self, store: Store, wake: asyncio.Event, loop: asyncio.AbstractEventLoop):
        self._store = store
        self._wake = wake
        self._loop = loop

    async def __call__(self, entry: JournalEntry) -> IngestResult:
        result = await self._store.ingest(entry)
        if not result.duplicate and entry.status == "received":
            self._wake.set()
        return result

    def blocking(
        self,
        entry: JournalEntry,
        timeout: float,
        before_commit: Callable[[], object] | None = None,
    ) -> IngestResult:
        result = self._store.ingest_blocking(entry, timeout, before_commit)
        if not result.duplicate and entry.status == "received":
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:
                pass  # the loop is closed: the engine is stopping, the journal has it
        return result


class Engine:
    """Start with :meth:`run`; stop by setting the ``stopping`` event (or SIGTERM)."""

    def __init__(self, config: Config, *, key: str | None = None, grace: float = 10.0) -> None:
        self.config = config
        self.grace = grace
        self.node_id = config.engine.node_id or socket.gethostname()
        self._key = key if key is not None else os.environ.get("EAI_KEY")
        self.listeners: dict[str, Listener] = {}
        self.store: Store | None = None
        self.pipeline: Pipeline | None = None
        self.mailer: AnomalyMailer | None = None
        self.reconciler: Reconciler | None = None
        self.workers: dict[str, DeliveryWorker] = {}
        self.started = asyncio.Event()

    def _wake_workers(self, destinations: set[str]) -> None:
        for d in destinations:
            w = self.workers.get(d)
            if w is not None:
                w.wake.set()

    async def run(
        self, stopping: asyncio.Event | None = None, install_signals: bool = False
    ) -> None:
        stopping = stopping or asyncio.Event()
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stopping.set)
        cfg = self.config
        admin_path = cfg.engine.admin_socket_path()
        _private_data_dir(
            Path(cfg.engine.data_dir),
            cfg.engine.admin_group is not None
            and admin_path.absolute().parent == Path(cfg.engine.data_dir).absolute(),
        )
        lock = None
        if cfg.engine.database.startswith("sqlite"):
            lock = _lock_data_dir(Path(cfg.engine.data_dir))
        store = self.store = Store(cfg.engine.database, Path(cfg.engine.data_dir), self._key)
        store.start()
        admin = AdminServer(admin_path, store, group=cfg.engine.admin_group)
        tasks: list[asyncio.Task[None]] = []
        scheduler = AsyncIOScheduler(timezone="UTC")
        try:
            # Single-process SQLite: every lease in the journal was this engine's.
            owner = None if store.is_sqlite else self.node_id
            await store.writer.run(lambda c: clear_leases(c, owner))
            await admin.start()
            for problem in () if store.is_sqlite else lease_problems(cfg):
                log.warning("%s", problem)  # one engine per SQLite journal: no other node
            for dcfg in cfg.destinations:
                self.workers[dcfg.name] = DeliveryWorker(
                    dcfg,
                    build_destination(dcfg),
                    store,
                    self.node_id,
                    window=cfg.engine.delivery_batch,
                    lease=cfg.engine.lease,
                    concurrency=dcfg.send_limits().connections,
                    pace=cfg.engine.batch_wait,
                )
            self.mailer = AnomalyMailer(store, cfg.identity)
            if cfg.identity.server is not None:
                client = IdentityServerClient(cfg.identity.server)
                self.reconciler = Reconciler(client, cfg.identity)
            self.pipeline = Pipeline(
                cfg,
                store,
                self.node_id,
                self._wake_workers,
                self.mailer.urgent,
                pace=cfg.engine.batch_wait,
                reconciler=self.reconciler,
            )
            pipeline = self.pipeline

            ingest = _Ingest(store, pipeline.wake, asyncio.get_running_loop())
            for lcfg in cfg.listeners:
                listener = build_listener(lcfg, ingest)
                await listener.start()
                self.listeners[lcfg.name] = listener
            tasks.append(asyncio.create_task(pipeline.run(stopping), name="pipeline"))
            tasks.append(asyncio.create_task(self.mailer.run(stopping), name="anomaly-mail"))
            scheduler.add_job(
                self.mailer.digest,
                "interval",
                seconds=cfg.identity.digest_every,
                id="identity-digest",
                coalesce=True,
                max_instances=1,
            )
            if cfg.identity.server is not None:
                scheduler.add_job(
                    pipeline.retry_unavailable,
                    "interval",
                    seconds=cfg.identity.server.retry_every,
                    id="identity-retry",
                    coalesce=True,
                    max_instances=1,
                )
            view = _JournalView(store)
            for job in periodic_jobs().values():
                scheduler.add_job(
                    job.run,
                    "interval",
                    seconds=job.interval,
                    args=[cfg, view],
                    id=f"periodic:{job.name}",
                    coalesce=True,
                    max_instances=1,
                )
            scheduler.start()
            for w in self.workers.values():
                tasks.append(asyncio.create_task(w.run(stopping), name=f"delivery:{w.name}"))
            log.info(
                "engine %s started: %d listener(s), %d destination(s), %d route(s)",
                self.node_id,
                len(self.listeners),
                len(self.workers),
                len(cfg.routes),
            )
            self.started.set()
            await stopping.wait()
            log.info("stopping: no new connections, finishing in-flight work")
        finally:
            await admin.stop()
            for listener in self.listeners.values():
                try:
                    await listener.stop(self.grace)
                except Exception:  # noqa: BLE001
                    log.exception("listener failed to stop cleanly")
            stopping.set()
            if scheduler.running:
                scheduler.shutdown(wait=False)
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if self.reconciler is not None:
                await self.reconciler.aclose()
            store.close()
            if lock is not None:
                lock.close()
            log.info("engine stopped")
