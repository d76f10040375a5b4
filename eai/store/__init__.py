"""The journal: durable, encrypted storage of messages, deliveries and events.

Touches: DB, files (key file).

The public API of the store; its modules are private, one job each:

- :class:`Store` (here): opens the database, owns the cipher and the writer thread;
- claims with leases (``_claims``): :func:`claim_messages`, :func:`claim_deliveries`;
- the pipeline's decisions (``_plans``): :class:`MessagePlan`, :func:`apply_plans`,
  :func:`settle_held`; the outbox rows' outcomes (``_outbox``): :func:`record_outcomes`;
- follow-ups, the rows an outcome or a receipt adds (``_follow_ups``): :func:`add_follow_ups`,
  :func:`delivery_item`;
- support queries (``_listing``, ``_support_queries``): :func:`list_messages`,
  :func:`message_detail`, :func:`queue_stats`, :func:`settlement`...;
- support actions (``_support_actions``): :func:`read_raw`, :func:`resend`,
  :func:`set_paused`, :func:`release`, :func:`replay_plans`;
- technical alerts (``_alerts``: state, mails owed, silences; ``_alert_probes``: what
  the rules measure);
- anomalies (``_anomalies``); identity cross-references (``_xref``), the pipeline's
  identity writes (``_identity_ops``) and ``eai identity lookup`` (``_xref_lookup``);
- the audit trail (``_audit``, ``_audit_chain``): :func:`append_audit` (a record chained
  to the one before by a keyed hash), :func:`verify_chain`, :func:`list_audit`,
  :func:`purge_audit`; the forwarders' cursors;
- the journal itself (``_journal``, its hot path on ``_driver_sql``): :func:`insert_entries`;
  its tables, for tests and tooling, in :mod:`eai.store.schema`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine

from eai.messages import IngestResult, JournalEntry
from eai.store._alert_probes import DestinationHealth, destination_health, rejected_by_facility
from eai.store._alerts import (
    AlertChanges,
    AlertNotice,
    AlertRow,
    ClaimedNotice,
    Silence,
    add_silence,
    claim_notices,
    finish_notices,
    list_alerts,
    list_silences,
    update_alerts,
)
from eai.store._anomalies import (
    CONTROL_ID_REUSED,
    AnomalyRow,
    list_anomalies,
    mark_notified,
    pending_for_notification,
)
from eai.store._audit import AuditActor, AuditEntry, AuditRecord
from eai.store._audit import append as append_audit
from eai.store._audit import record_mac as audit_record_mac
from eai.store._audit_chain import (
    ChainCheck,
    audit_after,
    audit_cursor,
    hold_audit_lease,
    list_audit,
    purge_audit,
    set_audit_cursor,
    verify_chain,
)
from eai.store._claims import (
    ClaimedDelivery,
    ClaimedMessage,
    claim_deliveries,
    claim_messages,
    clear_leases,
)
from eai.store._crypto import KEY_FILE, Cipher, load_master_key
from eai.store._db import is_sqlite, open_engine, prepare_schema
from eai.store._follow_ups import add_follow_ups, delivery_item
from eai.store._identity_ops import IdentityOp, XrefRecord, XrefRedirect
from eai.store._journal import content_lines, insert_entries, naive_utc, utcnow
from eai.store._listing import DeliveryView, EventView, MessageView, list_messages, message_detail
from eai.store._nodes import (
    DEAD_AFTER,
    HEARTBEAT_EVERY,
    LiveNode,
    heartbeat,
    is_leader,
    lease_owner_id,
    live_named,
    register_node,
    release_dead,
    release_job_lock,
    try_job_lock,
    unregister_node,
)
from eai.store._outbox import DeliveryOutcome, record_outcomes
from eai.store._plans import MessagePlan, PlannedDelivery, apply_plans, held_messages, settle_held
from eai.store._support_actions import (
    cli_actor,
    read_raw,
    release,
    replay_plans,
    resend,
    set_paused,
)
from eai.store._support_queries import (
    QueueView,
    content_deliveries,
    messages_for_replay,
    queue_stats,
    settlement,
)
from eai.store._writer import Writer
from eai.store._xref import (
    RecordOutcome,
    change_identifier,
    local_ordering_key,
    ordering_key_for,
    record_xref,
)
from eai.store._xref import merge as merge_identities
from eai.store._xref_lookup import MergeEvent, XrefEntry, XrefView
from eai.store._xref_lookup import lookup as xref_lookup

__all__ = [
    "DEAD_AFTER",
    "HEARTBEAT_EVERY",
    "LiveNode",
    "heartbeat",
    "is_leader",
    "lease_owner_id",
    "live_named",
    "register_node",
    "release_dead",
    "release_job_lock",
    "try_job_lock",
    "unregister_node",
    "AlertChanges",
    "AlertNotice",
    "AlertRow",
    "ClaimedNotice",
    "DestinationHealth",
    "Silence",
    "add_silence",
    "claim_notices",
    "destination_health",
    "finish_notices",
    "list_alerts",
    "list_silences",
    "rejected_by_facility",
    "update_alerts",
    "AuditActor",
    "AuditEntry",
    "AuditRecord",
    "ChainCheck",
    "append_audit",
    "audit_after",
    "audit_record_mac",
    "audit_cursor",
    "cli_actor",
    "hold_audit_lease",
    "list_audit",
    "purge_audit",
    "set_audit_cursor",
    "verify_chain",
    "CONTROL_ID_REUSED",
    "KEY_FILE",
    "AnomalyRow",
    "Cipher",
    "ClaimedDelivery",
    "ClaimedMessage",
    "DeliveryOutcome",
    "DeliveryView",
    "EventView",
    "IdentityOp",
    "MergeEvent",
    "MessagePlan",
    "MessageView",
    "PlannedDelivery",
    "QueueView",
    "RecordOutcome",
    "Store",
    "XrefEntry",
    "XrefRecord",
    "XrefRedirect",
    "XrefView",
    "add_follow_ups",
    "apply_plans",
    "change_identifier",
    "claim_deliveries",
    "claim_messages",
    "clear_leases",
    "content_deliveries",
    "content_lines",
    "delivery_item",
    "held_messages",
    "insert_entries",
    "list_anomalies",
    "list_messages",
    "load_master_key",
    "local_ordering_key",
    "mark_notified",
    "merge_identities",
    "message_detail",
    "messages_for_replay",
    "naive_utc",
    "open_engine",
    "ordering_key_for",
    "pending_for_notification",
    "queue_stats",
    "read_raw",
    "record_outcomes",
    "record_xref",
    "release",
    "replay_plans",
    "resend",
    "set_paused",
    "settle_held",
    "settlement",
    "utcnow",
    "xref_lookup",
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
