"""The engine's side of the audit trail: the retention purge job and the SIEM forwarder.

Touches: DB (the purge, in a worker thread), network (the forwarder, when configured).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from eai.audit._record import engine_actor
from eai.audit._syslog import SyslogForwarder
from eai.config import AuditConfig
from eai.net import run_blocking
from eai.store import Store, purge_audit, utcnow

if TYPE_CHECKING:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

__all__ = ["AuditService", "purge_expired"]

log = logging.getLogger(__name__)


def purge_expired(store: Store, cfg: AuditConfig, node_id: str) -> int:
    """Deletes the records older than ``audit.retention``; the purge records itself."""
    now = utcnow()
    before = now - timedelta(seconds=cfg.retention)
    actor = engine_actor(node_id, via="retention job")
    count = purge_audit(store.engine, store.cipher, before, actor, now)
    if count:
        log.info("audit trail: %d record(s) past retention purged", count)
    return count


class AuditService:
    """Started by the engine: :meth:`start` schedules the purge and starts forwarding."""

    def __init__(self, store: Store, cfg: AuditConfig, node_id: str) -> None:
        self._store = store
        self._cfg = cfg
        self._node_id = node_id
        self.forwarder = (
            SyslogForwarder(store, cfg.syslog, node_id) if cfg.syslog is not None else None
        )

    async def purge(self) -> int:
        try:
            return await run_blocking(purge_expired, self._store, self._cfg, self._node_id)
        except Exception:  # noqa: BLE001 - a failed purge is retried at the next run
            log.exception("audit trail purge failed")
            return 0

    def start(
        self, scheduler: AsyncIOScheduler, stopping: asyncio.Event
    ) -> list[asyncio.Task[Any]]:
        scheduler.add_job(
            self.purge,
            "interval",
            seconds=self._cfg.purge_every,
            id="audit-purge",
            coalesce=True,
            max_instances=1,
        )
        if self.forwarder is None:
            return []
        return [asyncio.create_task(self.forwarder.run(stopping), name="audit-syslog")]
