"""The journal: durable, encrypted storage of messages, deliveries and events.

Touches: DB, files (key file).

Public surface: :class:`Store` (opens the database, owns the cipher and the
writer thread) and the typed rows/outcomes the pipeline and delivery use.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine

from eai.messages import IngestResult, JournalEntry
from eai.store._crypto import Cipher, load_master_key
from eai.store._db import is_sqlite, open_engine, prepare_schema
from eai.store._journal import insert_entries, naive_utc, utcnow
from eai.store._work import (
    ClaimedDelivery,
    ClaimedMessage,
    DeliveryOutcome,
    MessagePlan,
    PlannedDelivery,
)
from eai.store._writer import Writer

__all__ = [
    "Cipher",
    "ClaimedDelivery",
    "ClaimedMessage",
    "DeliveryOutcome",
    "MessagePlan",
    "PlannedDelivery",
    "Store",
    "naive_utc",
    "utcnow",
]


class Store:
    """One journal database, its cipher, and (in the engine) its writer thread."""

    def __init__(self, database_url: str, data_dir: Path, key: str | None = None) -> None:
        self.data_dir = data_dir
        self.cipher = Cipher(load_master_key(data_dir, key))
        self.engine: Engine = open_engine(database_url)
        try:
            prepare_schema(self.engine, self.cipher)
        except BaseException:
            self.engine.dispose()
            raise
        # A caller may run its own journal transaction when the writer is idle only on
        # SQLite: a local file's waits are bounded by its busy timeout, whereas a network
        # database that hangs would hold the caller past its journal_timeout answer.
        self.writer = Writer(self.engine, self._journal_batch, combine=is_sqlite(self.engine))

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.engine)

    def _journal_batch(self, conn: Connection, entries: list[JournalEntry]) -> list[IngestResult]:
        return insert_entries(conn, self.cipher, entries)

    async def ingest(self, entry: JournalEntry) -> IngestResult:
        """The listeners' :data:`eai.registry.Ingest`: returns after the durable commit."""
        return await self.writer.journal(entry)

    def ingest_blocking(
        self,
        entry: JournalEntry,
        timeout: float,
        before_commit: Callable[[], object] | None = None,
    ) -> IngestResult:
        """:meth:`ingest` for a listener's own thread: returns after the durable commit
        (see :meth:`eai.registry.ThreadIngest.blocking` for ``before_commit``)."""
        return self.writer.journal_blocking(entry, timeout, before_commit)

    def start(self) -> None:
        self.writer.start()

    def close(self) -> None:
        self.writer.stop()
        self.engine.dispose()
