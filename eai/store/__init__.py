"""The journal: durable, encrypted storage of messages, deliveries and events.

Touches: DB, files (key file).

Over 400 lines on purpose: most of it is the export table (the names, their
``TYPE_CHECKING`` imports and the lazy-import map), so that ``import eai.store`` stays
cheap for the CLI; the code here is :class:`Store` alone.

The public API of the store; its modules are private, one job each:

- :class:`Store` (here): opens the database, owns the cipher and the writer thread;
- claims with leases (``_claims``): :func:`claim_messages`, :func:`claim_deliveries`;
- the pipeline's decisions (``_plans``): :class:`MessagePlan`, :func:`apply_plans`,
  :func:`settle_held`; the outbox rows' outcomes (``_outbox``): :func:`record_outcomes`;
- follow-ups, the rows an outcome or a receipt adds (``_follow_ups``): :func:`add_follow_ups`,
  :func:`delivery_item`; what a delivery's attempts recorded (``_attempts``):
  :func:`attempt_details`;
- support queries (``_listing``, ``_support_queries``): :func:`list_messages`,
  :func:`message_detail`, :func:`queue_stats`, :func:`settlement`...;
  ``eai messages list`` reads with :func:`read_messages` (``_sqlite_read``: a SQLite
  journal through ``sqlite3``, the same statements compiled ahead of time);
- support actions (``_support_actions``): :func:`read_raw`, :func:`resend`,
  :func:`set_paused`, :func:`release`, :func:`replay_plans`;
- console accounts (``_accounts``) and the console's searches (``_search``);
- technical alerts (``_alerts``: state, mails owed, silences; ``_alert_probes``: what
  the rules measure);
- anomalies (``_anomalies``); identity cross-references (``_xref``), the pipeline's
  identity writes (``_identity_ops``) and ``eai identity lookup`` (``_xref_lookup``);
- the audit trail (``_audit``, ``_audit_chain``): :func:`append_audit` (a record chained
  to the one before by a keyed hash), :func:`verify_chain`, :func:`list_audit`,
  :func:`purge_audit`; the forwarders' cursors;
- engine-wide events, of no message (``_engine_events``): :func:`engine_events`;
- the journal itself (``_journal``, its hot path on ``_driver_sql``): :func:`insert_entries`;
  its tables, for tests and tooling, in :mod:`eai.store.schema`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eai.store._crypto import KEY_FILE, Cipher, load_master_key

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from eai.messages import IngestResult, JournalEntry
    from eai.store._accounts import (
        ROLES,
        AccountView,
        add_account,
        disable_account,
        get_account,
        list_accounts,
        login_failed,
        login_succeeded,
        set_password,
    )
    from eai.store._alert_probes import DestinationHealth, destination_health, rejected_by_facility
    from eai.store._alerts import (
        AlertChanges,
        AlertNotice,
        AlertRow,
        ClaimedNotice,
        Silence,
        add_silence,
        claim_notices,
        end_silence,
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
    from eai.store._attempts import attempt_details
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
    from eai.store._db import open_engine, sqlite_file
    from eai.store._delivery_read import read_delivery
    from eai.store._engine_events import ENGINE_EVENT_KINDS, EngineEvent, engine_events
    from eai.store._flows import FlowSeries, flow_series, roll_up_flows
    from eai.store._follow_ups import add_follow_ups, delivery_item
    from eai.store._identity_ops import IdentityOp, XrefRecord, XrefRedirect
    from eai.store._journal import content_lines, insert_entries, naive_utc, utcnow
    from eai.store._listing import list_messages, message_detail
    from eai.store._listing_views import DeliveryView, EventView, MessageView
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
    from eai.store._plans import (
        MessagePlan,
        PlannedDelivery,
        apply_plans,
        held_messages,
        settle_held,
    )
    from eai.store._receipts import RECEIPT_EVENT, DeliveryRecord, delivery_record, record_receipt
    from eai.store._search import (
        DestinationRow,
        MessageQuery,
        destination_rows,
        flow_rates,
        search_message_ids,
    )
    from eai.store._sqlite_read import read_messages
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
    from eai.store._write_lock import WriteLock
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
    "ROLES",
    "AccountView",
    "DestinationRow",
    "MessageQuery",
    "add_account",
    "destination_rows",
    "disable_account",
    "flow_rates",
    "get_account",
    "list_accounts",
    "login_failed",
    "login_succeeded",
    "search_message_ids",
    "set_password",
    "ENGINE_EVENT_KINDS",
    "EngineEvent",
    "engine_events",
    "AlertChanges",
    "AlertNotice",
    "AlertRow",
    "ClaimedNotice",
    "DestinationHealth",
    "Silence",
    "add_silence",
    "claim_notices",
    "end_silence",
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
    "JournalAccess",
    "Store",
    "XrefEntry",
    "XrefRecord",
    "XrefRedirect",
    "XrefView",
    "add_follow_ups",
    "attempt_details",
    "FlowSeries",
    "flow_series",
    "read_delivery",
    "roll_up_flows",
    "RECEIPT_EVENT",
    "DeliveryRecord",
    "delivery_record",
    "record_receipt",
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
    "read_messages",
    "read_raw",
    "record_outcomes",
    "record_xref",
    "release",
    "replay_plans",
    "resend",
    "set_paused",
    "settle_held",
    "settlement",
    "sqlite_file",
    "utcnow",
    "xref_lookup",
]

_LAZY: dict[str, tuple[str, str]] = {
    "DEAD_AFTER": ("eai.store._nodes", "DEAD_AFTER"),
    "HEARTBEAT_EVERY": ("eai.store._nodes", "HEARTBEAT_EVERY"),
    "LiveNode": ("eai.store._nodes", "LiveNode"),
    "heartbeat": ("eai.store._nodes", "heartbeat"),
    "is_leader": ("eai.store._nodes", "is_leader"),
    "lease_owner_id": ("eai.store._nodes", "lease_owner_id"),
    "live_named": ("eai.store._nodes", "live_named"),
    "register_node": ("eai.store._nodes", "register_node"),
    "release_dead": ("eai.store._nodes", "release_dead"),
    "release_job_lock": ("eai.store._nodes", "release_job_lock"),
    "try_job_lock": ("eai.store._nodes", "try_job_lock"),
    "unregister_node": ("eai.store._nodes", "unregister_node"),
    "ROLES": ("eai.store._accounts", "ROLES"),
    "AccountView": ("eai.store._accounts", "AccountView"),
    "add_account": ("eai.store._accounts", "add_account"),
    "disable_account": ("eai.store._accounts", "disable_account"),
    "get_account": ("eai.store._accounts", "get_account"),
    "list_accounts": ("eai.store._accounts", "list_accounts"),
    "login_failed": ("eai.store._accounts", "login_failed"),
    "login_succeeded": ("eai.store._accounts", "login_succeeded"),
    "set_password": ("eai.store._accounts", "set_password"),
    "DestinationRow": ("eai.store._search", "DestinationRow"),
    "MessageQuery": ("eai.store._search", "MessageQuery"),
    "destination_rows": ("eai.store._search", "destination_rows"),
    "flow_rates": ("eai.store._search", "flow_rates"),
    "search_message_ids": ("eai.store._search", "search_message_ids"),
    "ENGINE_EVENT_KINDS": ("eai.store._engine_events", "ENGINE_EVENT_KINDS"),
    "EngineEvent": ("eai.store._engine_events", "EngineEvent"),
    "engine_events": ("eai.store._engine_events", "engine_events"),
    "AlertChanges": ("eai.store._alerts", "AlertChanges"),
    "AlertNotice": ("eai.store._alerts", "AlertNotice"),
    "AlertRow": ("eai.store._alerts", "AlertRow"),
    "AnomalyRow": ("eai.store._anomalies", "AnomalyRow"),
    "AuditActor": ("eai.store._audit", "AuditActor"),
    "AuditEntry": ("eai.store._audit", "AuditEntry"),
    "AuditRecord": ("eai.store._audit", "AuditRecord"),
    "CONTROL_ID_REUSED": ("eai.store._anomalies", "CONTROL_ID_REUSED"),
    "ChainCheck": ("eai.store._audit_chain", "ChainCheck"),
    "ClaimedDelivery": ("eai.store._claims", "ClaimedDelivery"),
    "ClaimedMessage": ("eai.store._claims", "ClaimedMessage"),
    "ClaimedNotice": ("eai.store._alerts", "ClaimedNotice"),
    "DeliveryOutcome": ("eai.store._outbox", "DeliveryOutcome"),
    "DeliveryView": ("eai.store._listing_views", "DeliveryView"),
    "DestinationHealth": ("eai.store._alert_probes", "DestinationHealth"),
    "EventView": ("eai.store._listing_views", "EventView"),
    "IdentityOp": ("eai.store._identity_ops", "IdentityOp"),
    "MergeEvent": ("eai.store._xref_lookup", "MergeEvent"),
    "MessagePlan": ("eai.store._plans", "MessagePlan"),
    "MessageView": ("eai.store._listing_views", "MessageView"),
    "PlannedDelivery": ("eai.store._plans", "PlannedDelivery"),
    "QueueView": ("eai.store._support_queries", "QueueView"),
    "RecordOutcome": ("eai.store._xref", "RecordOutcome"),
    "Silence": ("eai.store._alerts", "Silence"),
    "XrefEntry": ("eai.store._xref_lookup", "XrefEntry"),
    "XrefRecord": ("eai.store._identity_ops", "XrefRecord"),
    "XrefRedirect": ("eai.store._identity_ops", "XrefRedirect"),
    "XrefView": ("eai.store._xref_lookup", "XrefView"),
    "add_follow_ups": ("eai.store._follow_ups", "add_follow_ups"),
    "FlowSeries": ("eai.store._flows", "FlowSeries"),
    "flow_series": ("eai.store._flows", "flow_series"),
    "read_delivery": ("eai.store._delivery_read", "read_delivery"),
    "roll_up_flows": ("eai.store._flows", "roll_up_flows"),
    "attempt_details": ("eai.store._attempts", "attempt_details"),
    "RECEIPT_EVENT": ("eai.store._receipts", "RECEIPT_EVENT"),
    "DeliveryRecord": ("eai.store._receipts", "DeliveryRecord"),
    "delivery_record": ("eai.store._receipts", "delivery_record"),
    "record_receipt": ("eai.store._receipts", "record_receipt"),
    "add_silence": ("eai.store._alerts", "add_silence"),
    "append_audit": ("eai.store._audit", "append"),
    "apply_plans": ("eai.store._plans", "apply_plans"),
    "audit_after": ("eai.store._audit_chain", "audit_after"),
    "audit_cursor": ("eai.store._audit_chain", "audit_cursor"),
    "audit_record_mac": ("eai.store._audit", "record_mac"),
    "change_identifier": ("eai.store._xref", "change_identifier"),
    "claim_deliveries": ("eai.store._claims", "claim_deliveries"),
    "claim_messages": ("eai.store._claims", "claim_messages"),
    "claim_notices": ("eai.store._alerts", "claim_notices"),
    "end_silence": ("eai.store._alerts", "end_silence"),
    "clear_leases": ("eai.store._claims", "clear_leases"),
    "cli_actor": ("eai.store._support_actions", "cli_actor"),
    "content_deliveries": ("eai.store._support_queries", "content_deliveries"),
    "content_lines": ("eai.store._journal", "content_lines"),
    "delivery_item": ("eai.store._follow_ups", "delivery_item"),
    "destination_health": ("eai.store._alert_probes", "destination_health"),
    "finish_notices": ("eai.store._alerts", "finish_notices"),
    "held_messages": ("eai.store._plans", "held_messages"),
    "hold_audit_lease": ("eai.store._audit_chain", "hold_audit_lease"),
    "insert_entries": ("eai.store._journal", "insert_entries"),
    "list_alerts": ("eai.store._alerts", "list_alerts"),
    "list_anomalies": ("eai.store._anomalies", "list_anomalies"),
    "list_audit": ("eai.store._audit_chain", "list_audit"),
    "list_messages": ("eai.store._listing", "list_messages"),
    "list_silences": ("eai.store._alerts", "list_silences"),
    "local_ordering_key": ("eai.store._xref", "local_ordering_key"),
    "mark_notified": ("eai.store._anomalies", "mark_notified"),
    "merge_identities": ("eai.store._xref", "merge"),
    "message_detail": ("eai.store._listing", "message_detail"),
    "messages_for_replay": ("eai.store._support_queries", "messages_for_replay"),
    "naive_utc": ("eai.store._journal", "naive_utc"),
    "ordering_key_for": ("eai.store._xref", "ordering_key_for"),
    "pending_for_notification": ("eai.store._anomalies", "pending_for_notification"),
    "purge_audit": ("eai.store._audit_chain", "purge_audit"),
    "queue_stats": ("eai.store._support_queries", "queue_stats"),
    "read_messages": ("eai.store._sqlite_read", "read_messages"),
    "read_raw": ("eai.store._support_actions", "read_raw"),
    "open_engine": ("eai.store._db", "open_engine"),
    "record_outcomes": ("eai.store._outbox", "record_outcomes"),
    "record_xref": ("eai.store._xref", "record_xref"),
    "rejected_by_facility": ("eai.store._alert_probes", "rejected_by_facility"),
    "release": ("eai.store._support_actions", "release"),
    "replay_plans": ("eai.store._support_actions", "replay_plans"),
    "resend": ("eai.store._support_actions", "resend"),
    "set_audit_cursor": ("eai.store._audit_chain", "set_audit_cursor"),
    "set_paused": ("eai.store._support_actions", "set_paused"),
    "settle_held": ("eai.store._plans", "settle_held"),
    "settlement": ("eai.store._support_queries", "settlement"),
    "sqlite_file": ("eai.store._db", "sqlite_file"),
    "update_alerts": ("eai.store._alerts", "update_alerts"),
    "utcnow": ("eai.store._journal", "utcnow"),
    "verify_chain": ("eai.store._audit_chain", "verify_chain"),
    "xref_lookup": ("eai.store._xref_lookup", "lookup"),
}
"""Exported name -> (module, attribute), imported when first asked for (PEP 562): the
journal's readers load the few modules they use, not the pipeline's, the claims' or the
identity cross-references'; ``eai messages list`` on SQLite (``read_messages``) not even
SQLAlchemy, which :class:`Store` imports when it opens a journal. A new export goes here
and in the ``TYPE_CHECKING`` imports above (or, eagerly imported, only in ``__all__``)."""


def __getattr__(name: str) -> Any:
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'eai.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(where[0]), where[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


@dataclass(frozen=True, slots=True)
class JournalAccess:
    """A running engine's journal, for a process of its own to open (:meth:`Store.attach`):
    the database, the data directory and the cipher (its derived keys pickle)."""

    database_url: str
    data_dir: Path
    cipher: Cipher


class Store:
    """One journal database, its cipher, and (in the engine) its writer thread."""

    def __init__(
        self,
        database_url: str,
        data_dir: Path,
        key: str | None = None,
        *,
        cipher: Cipher | None = None,
    ) -> None:
        """Opens the journal at ``database_url``: creates or migrates its schema and checks
        the key (read from ``key`` or ``data_dir``), unless ``cipher`` is given: the
        journal of an engine already running, opened again by a process of its own (a
        listener serving in its own process, :meth:`access`), as it is."""
        from eai.store._db import is_sqlite, open_engine, prepare_schema
        from eai.store._writer import Writer

        self.data_dir = data_dir
        self.database_url = database_url
        self.cipher = cipher if cipher is not None else Cipher(load_master_key(data_dir, key))
        self.engine: Engine = open_engine(database_url)
        if cipher is None:
            try:
                prepare_schema(self.engine, self.cipher)
            except BaseException:
                self.engine.dispose()
                raise
        # A caller may run its own journal transaction when the writer is idle only on
        # SQLite: a local file's waits are bounded by its busy timeout, whereas a network
        # database that hangs would hold the caller past its journal_timeout answer.
        self.writer = Writer(self.engine, self._journal_batch, combine=is_sqlite(self.engine))
        self._write_lock: WriteLock | None = None
        if cipher is not None:
            self._share_writes()

    def access(self) -> JournalAccess:
        """What another process of the engine opens this journal with (it pickles). From
        now on, this store's writer shares the SQLite journal's write lock with it."""
        self._share_writes()
        return JournalAccess(self.database_url, self.data_dir, self.cipher)

    def _share_writes(self) -> None:
        """SQLite: the writers of the processes that write this journal take turns on its
        :class:`~eai.store._write_lock.WriteLock` rather than in SQLite's busy handler."""
        from eai.store._db import sqlite_write_lock

        if self._write_lock is None:
            self._write_lock = sqlite_write_lock(self.engine)
            if self._write_lock is not None:
                self.writer.hold_around_transactions(self._write_lock)

    @classmethod
    def attach(cls, access: JournalAccess) -> Store:
        """The journal of :meth:`access`, opened in this process (schema and key as they are)."""
        return cls(access.database_url, access.data_dir, cipher=access.cipher)

    @property
    def shares_writes(self) -> bool:
        """True when another process writes this SQLite journal too (its writer and this
        one take turns on the journal's write lock): keep transactions short."""
        return self._write_lock is not None

    @property
    def is_sqlite(self) -> bool:
        from eai.store._db import is_sqlite

        return is_sqlite(self.engine)

    def _journal_batch(self, conn: Connection, entries: list[JournalEntry]) -> list[IngestResult]:
        # looked up on the package, as a caller of eai.store.insert_entries would: the
        # journal's write path is imported when the writer first works, not to list it
        journal: Any = sys.modules[__name__]
        return journal.insert_entries(conn, self.cipher, entries)  # type: ignore[no-any-return]

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
        if self._write_lock is not None:
            self._write_lock.close()
