"""What the engine gives its listeners: the journal to ingest into (then the pipeline is
woken), the receipts journal of deliveries already made, and a read-only journal view for
periodic jobs.

Touches: DB (through :class:`eai.store.Store`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from eai.alerts import Signals
from eai.ingest_activity import IngestActivity
from eai.ingest_report import IngestReport
from eai.messages import FollowUp, IngestResult, JournalEntry, OutboxItem
from eai.metrics import listener_meter
from eai.net import run_blocking
from eai.store import (
    DeliveryRecord,
    JournalAccess,
    Store,
    delivery_record,
    record_receipt,
    settlement,
    utcnow,
)

__all__ = ["EngineIngest", "JournalView"]


class JournalView:
    """:class:`eai.registry.JournalView` over the store (reads in a worker thread)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def settled(self, dedup_keys: Sequence[str], before: datetime) -> Mapping[str, bool]:
        return await run_blocking(settlement, self._store.engine, dedup_keys, before)


class EngineIngest:
    """The listeners' :class:`eai.registry.ThreadIngest` (journal, then wake the pipeline),
    :class:`eai.registry.ReceiptJournal` (receipts of deliveries already made) and
    :class:`eai.registry.JournalHost` (listeners serving in processes of their own)."""

    def __init__(
        self,
        store: Store,
        wake: asyncio.Event,
        loop: asyncio.AbstractEventLoop,
        signals: Signals | None = None,
        activity: IngestActivity | None = None,
    ):
        self._store = store
        self._wake = wake
        self._loop = loop
        self._signals = signals
        self._activity = activity
        """Told when a listener's own process journaled (the pipeline lets it go first)."""

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

    def journal_access(self) -> JournalAccess:
        """:class:`eai.registry.JournalHost`: the journal, for a listener's own process."""
        return self._store.access()

    def journaled_elsewhere(self, listener: str, report: IngestReport) -> None:
        """:class:`eai.registry.JournalHost`: what a listener's own process journaled."""
        meter = listener_meter(listener)
        for (status, duplicate), count in report.journaled.items():
            meter.journaled(status, duplicate, count)
        if report.failed:
            meter.failed(report.failed)
        for _ in range(report.failed):
            self._failed()  # one timestamp per failure: the alert counts them in a window
        for seconds in report.ack_seconds:
            meter.ack_seconds.observe(seconds)
        if report.received:
            if self._activity is not None:
                self._activity.journaled()
            self._wake.set()

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
