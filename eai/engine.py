"""The running engine: wires listeners, the journal, the pipeline and delivery workers.

Touches: DB, network, files (data_dir lock, routes.yaml on reload), signals.

SIGHUP (or ``eai reload``, through the admin socket) reloads routes.yaml: see
:meth:`Engine.reload` and :mod:`eai._reload` for what a reload applies and what
waits for a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Connection, insert

from eai._data_dir import lease_problems, lock_data_dir, private_data_dir
from eai._delivery_pool import DeliveryPool
from eai._engine_ingest import EngineIngest, JournalView
from eai._engine_jobs import reschedule_jobs, schedule_jobs, stop_scheduler
from eai._membership import Membership
from eai._plan_pool import PlanPool, PlanSource
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
from eai.errors import ConfigError, EaiError
from eai.ingest_activity import IngestActivity
from eai.net import run_blocking
from eai.pipeline import Pipeline
from eai.reconciler import Reconciler
from eai.registry import Listener, build_listener
from eai.store import (
    Store,
    utcnow,
)
from eai.store.schema import events
from identity.pdqm import IdentityServerClient

if TYPE_CHECKING:
    from eai.console import ConsoleServer
    from eai.metrics.endpoint import MetricsEndpoint

__all__ = ["Engine", "lease_problems"]

log = logging.getLogger(__name__)


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
        self._planner: PlanPool | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._reloading = asyncio.Lock()
        self._background: set[asyncio.Task[object]] = set()
        self.metrics: MetricsEndpoint | None = None
        self.console: ConsoleServer | None = None

    async def _plan_pool(self, cfg: Config, store: Store) -> PlanPool | None:
        """The planning processes of ``engine.plan_processes`` (None: plan in a thread)."""
        if not cfg.engine.plan_processes:
            return None
        if self.config_path is None:
            log.warning(
                "engine.plan_processes needs the engine started from a routes.yaml (its "
                "workers read the file): planning in the engine's process"
            )
            return None
        text = await run_blocking(self.config_path.read_bytes)
        planner = PlanPool(
            PlanSource(text, str(self.config_path), store.cipher), cfg.engine.plan_processes
        )
        planner.warm_up()
        log.info("pipeline: planning in %d process(es)", cfg.engine.plan_processes)
        return planner

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
            if self._planner is not None:
                self._planner.reconfigure(PlanSource(text, str(path), self.store.cipher))
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
        view = JournalView(self.store) if self.store is not None else None
        reschedule_jobs(self._scheduler, config, self.alerter, view)

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
        private_data_dir(
            Path(cfg.engine.data_dir),
            cfg.engine.admin_group is not None
            and admin_path.absolute().parent == Path(cfg.engine.data_dir).absolute(),
        )
        lock = None
        if cfg.engine.database.startswith("sqlite"):
            lock = lock_data_dir(Path(cfg.engine.data_dir))
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
            self._planner = await self._plan_pool(cfg, store)
            activity = IngestActivity()
            self.pipeline = Pipeline(
                cfg,
                store,
                nodes.owner,
                self._wake_workers,
                self.mailer.urgent,
                pace=cfg.engine.batch_wait,
                reconciler=self.reconciler,
                planner=self._planner,
                ingest=activity,
            )
            pipeline = self.pipeline
            nodes.on_dead = lambda: self._wake_all(pipeline.wake)

            ingest = EngineIngest(
                store, pipeline.wake, asyncio.get_running_loop(), self.signals, activity
            )
            for lcfg in cfg.listeners:
                listener = build_listener(lcfg, ingest)
                await listener.start()
                self.listeners[lcfg.name] = listener
            tasks.append(asyncio.create_task(pipeline.run(stopping), name="pipeline"))
            tasks.append(asyncio.create_task(self.mailer.run(stopping), name="anomaly-mail"))
            tasks.extend(AuditService(store, cfg.audit, self.node_id).start(scheduler, stopping))
            purge = scheduler.get_job("audit-purge")
            purge.modify(func=nodes.once("audit-purge", purge.func))
            reconciler = self.reconciler
            self.alerter = Alerter(
                store,
                cfg,
                self.node_id,
                self.signals,
                lambda: listener_ports(self.listeners),
                lambda: reconciler is not None and reconciler.outage_since is not None,
            )
            schedule_jobs(
                scheduler, nodes, cfg, self.mailer, pipeline, self.alerter, JournalView(store)
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
            await stop_scheduler(scheduler, self.grace)
            if self.alerter is not None:
                await self.alerter.aclose()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in list(self._background):
                task.cancel()
            await pool.close()
            if self._planner is not None:
                await run_blocking(self._planner.close)
            await nodes.leave()
            if self.reconciler is not None:
                await self.reconciler.aclose()
            store.close()
            if lock is not None:
                lock.close()
            log.info("engine stopped")
