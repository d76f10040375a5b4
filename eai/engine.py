"""The running engine: wires listeners, the journal, the pipeline and delivery workers.

Touches: DB, network, files (data_dir lock, routes.yaml on reload), signals.

SIGHUP (or ``eai reload``, through the admin socket) reloads routes.yaml: see
:meth:`Engine.reload` and :mod:`eai._reload` for what a reload applies and what
waits for a restart.
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
from typing import IO, TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Connection, insert

from eai._delivery_pool import DeliveryPool
from eai._membership import Membership
from eai._reload import (
    ReloadPlan,
    ReloadRefused,
    config_hash,
    plan_reload,
    read_new_config,
    unreadable,
)
from eai._scheduler_logs import quiet_scheduler_logs
from eai._supervision import start_endpoint
from eai.admin import AdminServer, Caller
from eai.alerts import Alerter, Signals, TlsRejectionWatch, listener_ports
from eai.anomaly_mail import AnomalyMailer
from eai.audit import AuditActor, AuditService, caller_actor, engine_actor, reload_recorder
from eai.config import Config
from eai.delivery import DeliveryWorker
from eai.errors import ConfigError, EaiError, StoreError
from eai.messages import FollowUp, IngestResult, JournalEntry, OutboxItem
from eai.metrics import listener_meter
from eai.metrics.endpoint import MetricsEndpoint
from eai.net import run_blocking
from eai.pipeline import Pipeline
from eai.reconciler import Reconciler
from eai.registry import Listener, build_listener, periodic_jobs
from eai.store import (
    DeliveryRecord,
    Store,
    delivery_record,
    record_receipt,
    settlement,
    utcnow,
)
from eai.store.schema import events
from identity.pdqm import IdentityServerClient

if TYPE_CHECKING:
    from eai.console import ConsoleServer

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
    """The listeners' :class:`eai.registry.ThreadIngest` (journal, then wake the pipeline)
    and :class:`eai.registry.ReceiptJournal` (receipts of deliveries already made)."""

    def __init__(
        self,
        store: Store,
        wake: asyncio.Event,
        loop: asyncio.AbstractEventLoop,
        signals: Signals | None = None,
    ):
        self._store = store
        self._wake = wake
        self._loop = loop
        self._signals = signals

    def _failed(self) -> None:
        """The listener answers AE/CE: counted for the ``journal_failing`` alert."""
        if self._signals is not None:
            self._signals.journal_failed()

    async def __call__(self, entry: JournalEntry) -> IngestResult:
        meter = listener_meter(entry.listener)
        try:
            result = await self._store.ingest(entry)
        except Exception:
            meter.failed()
            self._failed()
            raise
        meter.journaled(entry.status, result.duplicate)
        if not result.duplicate and entry.status == "received":
            self._wake.set()
        return result

    def blocking(
        self,
        entry: JournalEntry,
        timeout: float,
        before_commit: Callable[[], object] | None = None,
    ) -> IngestResult:
        meter = listener_meter(entry.listener)
        try:
            result = self._store.ingest_blocking(entry, timeout, before_commit)
        except Exception:
            meter.failed()
            self._failed()
            raise
        meter.journaled(entry.status, result.duplicate)
        if not result.duplicate and entry.status == "received":
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:
                pass  # the loop is closed: the engine is stopping, the journal has it
        return result

    async def delivery_record(self, delivery_id: int) -> tuple[OutboxItem, tuple[str, ...], bool]:
        """:class:`eai.registry.ReceiptJournal`: a delivery and its attempts (a read)."""
        record = await run_blocking(self._read_record, delivery_id)
        return record.item, record.attempts, record.status in ("delivered", "dead")

    def _read_record(self, delivery_id: int) -> DeliveryRecord:
        with self._store.engine.connect() as conn:
            return delivery_record(conn, self._store.cipher, delivery_id)

    async def record_receipt(
        self, delivery_id: int, key: str, detail: str, follow_ups: Sequence[FollowUp]
    ) -> bool:
        """:class:`eai.registry.ReceiptJournal`: a receipt and its follow-ups, once."""
        store = self._store
        made = await store.writer.run(
            lambda c: record_receipt(
                c, store.cipher, delivery_id, key, detail, follow_ups, utcnow()
            )
        )
        return made is not None


def _record_event(
    conn: Connection, kind: str, detail: str, audited: Callable[[Connection], object]
) -> None:
    """An engine-wide event (no message): who reloaded the config, when, which file; and
    its audit record, in the same transaction."""
    conn.execute(insert(events).values(at=utcnow(), message_id=None, kind=kind, detail=detail))
    audited(conn)


class Engine:
    """Start with :meth:`run`; stop by setting the ``stopping`` event (or SIGTERM);
    reload routes.yaml with :meth:`reload` (or SIGHUP, or ``eai reload``)."""

    def __init__(
        self,
        config: Config,
        *,
        key: str | None = None,
        grace: float = 10.0,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.grace = grace
        self.node_id = config.engine.node_id or socket.gethostname()
        self.lease_owner = ""
        """The lease owner id of this process, unique (set by :meth:`run`)."""
        self._key = key if key is not None else os.environ.get("EAI_KEY")
        self.listeners: dict[str, Listener] = {}
        self.store: Store | None = None
        self.pipeline: Pipeline | None = None
        self.mailer: AnomalyMailer | None = None
        self.reconciler: Reconciler | None = None
        self.alerter: Alerter | None = None
        self.signals = Signals()
        self.workers: dict[str, DeliveryWorker] = {}
        self.started = asyncio.Event()
        self._pool: DeliveryPool | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._reloading = asyncio.Lock()
        self._background: set[asyncio.Task[object]] = set()
        self.metrics: MetricsEndpoint | None = None
        self.console: ConsoleServer | None = None

    def _wake_all(self, wake: asyncio.Event) -> None:
        """Leases of a dead node were released: the pipeline and every worker claim."""
        wake.set()
        self._wake_workers(set(self.workers))

    def _wake_workers(self, destinations: set[str]) -> None:
        if self._pool is not None:
            self._pool.wake(destinations)

    async def reload(self, by: str, actor: AuditActor | None = None) -> dict[str, object]:
        """Reads routes.yaml again and applies it (see :mod:`eai._reload`); ``by`` names who
        asked (the admin socket's caller, or the signal). An invalid file raises
        :class:`ConfigError` with its FILE:LINE:COL issues and the running config stays.
        Both outcomes are logged and journaled as an event and an audit record of
        ``actor`` (default: the engine, as for a signal)."""
        actor = actor or engine_actor(self.node_id, via=by)
        if (
            self.config_path is None
            or not self.started.is_set()
            or self._pool is None
            or self.store is None
        ):
            why = (
                "this engine was not started from a routes.yaml"
                if self.config_path is None
                else "the engine is still starting"
            )
            log.warning("reload by %s refused: %s", by, why)
            raise ReloadRefused(f"{why}: nothing reloaded")
        async with self._reloading:
            path = self.config_path
            try:
                text = await run_blocking(path.read_bytes)
            except OSError as exc:
                raise await self._refused(
                    by, actor, "", ConfigError([unreadable(path, exc)])
                ) from exc
            digest = config_hash(text)
            try:
                new = await run_blocking(read_new_config, text, str(path))
                plan = plan_reload(self.config, new)
                workers = {n: self._pool.build(d) for n, d in plan.rebuilt().items()}
            except (ConfigError, ReloadRefused) as exc:
                raise await self._refused(by, actor, digest, exc) from exc
            except Exception as exc:  # noqa: BLE001 - a connector that cannot be built
                refused = ReloadRefused(f"a destination cannot be built: {exc}")
                raise await self._refused(by, actor, digest, refused) from exc
            await self._apply(plan, workers)
            detail = f"by {by}; {path} sha256 {digest}; {plan.summary()}"
            audited = reload_recorder(self.store, actor, detail, "success")
            await self.store.writer.run(
                lambda c: _record_event(c, "config_reloaded", detail, audited)
            )
            log.info("config reloaded by %s (sha256 %s): %s", by, digest[:12], plan.summary())
            for item in plan.restart_needed:
                log.warning("reload: %s changed in %s; kept until a restart", item, path)
            return {
                "file": str(path),
                "sha256": digest,
                "summary": plan.summary(),
                "restart_needed": list(plan.restart_needed),
            }

    async def _refused(self, by: str, actor: AuditActor, digest: str, exc: EaiError) -> EaiError:
        lines = str(exc).splitlines() or [type(exc).__name__]
        log.error("reload by %s refused; the running config stays:", by)
        for line in lines:
            log.error("  %s", line)
        if self.store is not None:
            detail = f"by {by}; {self.config_path} sha256 {digest or '-'}; " + "; ".join(lines)
            audited = reload_recorder(self.store, actor, detail, "failure")
            await self.store.writer.run(
                lambda c: _record_event(c, "config_reload_refused", detail, audited)
            )
        return exc

    async def _apply(self, plan: ReloadPlan, workers: dict[str, DeliveryWorker]) -> None:
        """New destinations start first, then the pipeline plans with the new routes,
        then changed destinations are rebuilt and removed ones stopped."""
        assert self._pool is not None
        for name in plan.added:
            self._pool.start(workers[name])
        self.config = plan.config
        if self.pipeline is not None:
            self.pipeline.reconfigure(plan.config)
        if self.mailer is not None:
            self.mailer.reconfigure(plan.config.identity)
        if self.alerter is not None:
            self.alerter.reconfigure(plan.config)
        self._reschedule(plan.config)
        if self.metrics is not None:
            self.metrics.reconfigure(plan.config)
        for name in plan.changed:
            await self._pool.retire(name)  # its batch finishes: no row sent twice
            self._pool.start(workers[name])
        for name in plan.removed:
            await self._pool.retire(name)
            log.warning(
                "destination %s removed by the reload: its worker stopped; rows still in "
                "its outbox stay there (eai queue list) until it comes back",
                name,
            )

    def _reschedule(self, config: Config) -> None:
        scheduler = self._scheduler
        if scheduler is None or not scheduler.running:
            return
        scheduler.reschedule_job(
            "identity-digest", trigger="interval", seconds=config.identity.digest_every
        )
        if self.alerter is not None:
            self._schedule_alerts(scheduler, self.alerter)
        view = _JournalView(self.store) if self.store is not None else None
        for job in periodic_jobs().values():
            if scheduler.get_job(f"periodic:{job.name}") is not None:
                scheduler.modify_job(f"periodic:{job.name}", args=[config, view])

    @staticmethod
    def _schedule_alerts(scheduler: AsyncIOScheduler, alerter: Alerter) -> None:
        """The alerts job every ``alerts.every`` (when a rule is configured)."""
        if scheduler.get_job("alerts") is not None:
            scheduler.remove_job("alerts")
        if alerter.wanted():
            scheduler.add_job(
                alerter.run_once,
                "interval",
                seconds=alerter.every,
                id="alerts",
                coalesce=True,
                max_instances=1,
            )

    def _on_sighup(self) -> None:
        task = asyncio.create_task(self._reload_logged("signal SIGHUP"))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload_logged(self, by: str) -> object:
        try:
            return await self.reload(by)
        except EaiError:
            return None  # logged and journaled by reload()
        except Exception:  # noqa: BLE001 - a reload never stops the engine
            log.exception("reload by %s failed; the running config stays", by)
            return None

    async def _admin_reload(self, caller: Caller, _request: dict[str, object]) -> dict[str, object]:
        actor = caller_actor(caller.user, caller.uid, caller.pid)
        return await self.reload(f"{caller.describe()} through the admin socket", actor)

    async def run(
        self, stopping: asyncio.Event | None = None, install_signals: bool = False
    ) -> None:
        stopping = stopping or asyncio.Event()
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stopping.set)
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        quiet_scheduler_logs()
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
        # node name for people (logs, audit, alerts); lease owner unique per process
        nodes = Membership(store, self.node_id, explicit=bool(cfg.engine.node_id))
        self.lease_owner = nodes.owner
        admin = AdminServer(
            admin_path, store, group=cfg.engine.admin_group, actions={"reload": self._admin_reload}
        )
        tasks: list[asyncio.Task[None]] = []
        scheduler = self._scheduler = AsyncIOScheduler(timezone="UTC")
        pool = self._pool = DeliveryPool(store, nodes.owner, cfg)
        self.workers = pool.workers
        tls_watch = TlsRejectionWatch(self.signals)
        logging.getLogger().addHandler(tls_watch)
        try:
            await nodes.join()  # SQLite: every lease in the journal was this engine's
            await admin.start()
            for problem in () if store.is_sqlite else lease_problems(cfg):
                log.warning("%s", problem)  # one engine per SQLite journal: no other node
            built = [pool.build(dcfg) for dcfg in cfg.destinations]
            self.mailer = AnomalyMailer(store, cfg.identity)
            self.mailer.check_sendable()
            if cfg.identity.server is not None:
                client = IdentityServerClient(cfg.identity.server)
                self.reconciler = Reconciler(client, cfg.identity)
            self.pipeline = Pipeline(
                cfg,
                store,
                nodes.owner,
                self._wake_workers,
                self.mailer.urgent,
                pace=cfg.engine.batch_wait,
                reconciler=self.reconciler,
            )
            pipeline = self.pipeline
            nodes.on_dead = lambda: self._wake_all(pipeline.wake)

            ingest = _Ingest(store, pipeline.wake, asyncio.get_running_loop(), self.signals)
            for lcfg in cfg.listeners:
                listener = build_listener(lcfg, ingest)
                await listener.start()
                self.listeners[lcfg.name] = listener
            tasks.append(asyncio.create_task(pipeline.run(stopping), name="pipeline"))
            tasks.append(asyncio.create_task(self.mailer.run(stopping), name="anomaly-mail"))
            tasks.extend(AuditService(store, cfg.audit, self.node_id).start(scheduler, stopping))
            purge = scheduler.get_job("audit-purge")
            purge.modify(func=nodes.once("audit-purge", purge.func))
            scheduler.add_job(
                nodes.once("identity-digest", self.mailer.digest),
                "interval",
                seconds=cfg.identity.digest_every,
                id="identity-digest",
                coalesce=True,
                max_instances=1,
            )
            if cfg.identity.server is not None:
                scheduler.add_job(
                    nodes.once("identity-retry", pipeline.retry_unavailable),
                    "interval",
                    seconds=cfg.identity.server.retry_every,
                    id="identity-retry",
                    coalesce=True,
                    max_instances=1,
                )
            reconciler = self.reconciler
            self.alerter = Alerter(
                store,
                cfg,
                self.node_id,
                self.signals,
                lambda: listener_ports(self.listeners),
                lambda: reconciler is not None and reconciler.outage_since is not None,
            )
            self._schedule_alerts(scheduler, self.alerter)
            view = _JournalView(store)
            for job in periodic_jobs().values():
                scheduler.add_job(
                    nodes.once(f"periodic:{job.name}", job.run),
                    "interval",
                    seconds=job.interval,
                    args=[cfg, view],
                    id=f"periodic:{job.name}",
                    coalesce=True,
                    max_instances=1,
                )
            if cfg.console is not None:
                from eai.console import ConsoleServer  # only when served: starlette, uvicorn

                self.console = ConsoleServer(
                    store,
                    lambda: self.config,
                    cfg.console,
                    config_path=self.config_path,
                    listener_states=lambda: {name: "running" for name in self.listeners},
                )
                self.console.start()
            scheduler.start()
            for worker in built:
                pool.start(worker)
            if cfg.metrics is not None:
                self.metrics = start_endpoint(
                    cfg.metrics,
                    lambda: self.config,
                    store,
                    self.node_id,
                    self.listeners,
                    stopping,
                    (tasks, scheduler, pool),
                    self.reconciler,
                )
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
            if self.console is not None:
                await run_blocking(self.console.stop)
            if self.metrics is not None:
                await run_blocking(self.metrics.stop)
            logging.getLogger().removeHandler(tls_watch)
            await admin.stop()
            for listener in self.listeners.values():
                try:
                    await listener.stop(self.grace)
                except Exception:  # noqa: BLE001
                    log.exception("listener failed to stop cleanly")
            stopping.set()
            if scheduler.running:
                scheduler.shutdown(wait=False)
            if self.alerter is not None:
                await self.alerter.aclose()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in list(self._background):
                task.cancel()
            await pool.close()
            await nodes.leave()
            if self.reconciler is not None:
                await self.reconciler.aclose()
            store.close()
            if lock is not None:
                lock.close()
            log.info("engine stopped")
