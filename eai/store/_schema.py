"""The journal's tables: messages, their patient ids, deliveries (outbox), events.

Touches: nothing (declares tables; ``_db`` creates them).

Payloads are stored encrypted (see ``_crypto``). Everything here that is in
clear is metadata: ids, types, statuses, times, listener, route, hashes.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

from eai.store._sqlite_timestamp import SqliteTimestamp

metadata = MetaData()

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")
Timestamp = DateTime().with_variant(SqliteTimestamp(), "sqlite")
"""A ``DateTime``; on SQLite written by :class:`SqliteTimestamp` (same strings, faster)."""

meta = Table(
    "eai_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("listener", String(64), nullable=False),
    Column("received_at", Timestamp, nullable=False),
    Column("content_type", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("peer", String(128), nullable=False, default=""),
    Column("control_id", String(128), nullable=False, default=""),
    Column("message_type", String(32), nullable=False, default=""),
    Column("sending_application", String(128), nullable=False, default=""),
    Column("sending_facility", String(128), nullable=False, default=""),
    Column("dedup_key", String(512), nullable=True),
    Column("size", Integer, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("ack", LargeBinary, nullable=False, default=b""),
    Column("reject_reason", Text, nullable=False, default=""),
    Column("routes", Text, nullable=False, default=""),
    Column("processed_at", Timestamp, nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until", Timestamp, nullable=True),
    # Whose messages keep their order (eai.order_key, read at ingest): "" = unknown, a
    # barrier for every later delivery; NULL = journaled before the key existed (same).
    Column("order_key", String(64), nullable=True),
    Index("ix_messages_dedup", "dedup_key", unique=True),
    Index("ix_messages_status_id", "status", "id"),
    # The delivery claims look up, per row, the earlier `received` messages of its key
    # and the oldest keyless ones (eai.store._claims): one index seek each.
    Index("ix_messages_received_key", "status", "order_key", "id"),
    Index("ix_messages_received_at", "received_at"),
    Index("ix_messages_listener", "listener"),
    Index("ix_messages_type", "message_type"),
    Index("ix_messages_control_id", "control_id"),  # the console's search by control id
)

patient_ids = Table(
    "message_patient_ids",
    metadata,
    Column("message_id", Id, ForeignKey("messages.id"), nullable=False),
    Column("id_hash", String(64), nullable=False),
    Index("ix_patient_ids_hash", "id_hash"),
    Index("ix_patient_ids_message", "message_id"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", Id, ForeignKey("messages.id"), nullable=False),
    Column("destination", String(64), nullable=False),
    Column("route", String(256), nullable=False, default=""),
    Column("patient_key", String(64), nullable=False),
    Column("control_id", String(128), nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", Timestamp, nullable=False),
    Column("next_attempt_at", Timestamp, nullable=False),
    Column("delivered_at", Timestamp, nullable=True),
    Column("last_error", Text, nullable=False, default=""),
    # NULL = the message's payload as received (nothing changed it).
    Column("payload", LargeBinary, nullable=True),
    Column("resend_of", Id, nullable=True),
    # The destination contract (eai.messages.OutboxItem); NULL on rows older than it:
    # media type from the message's content type, no mapping, no facts.
    Column("media_type", String(64), nullable=True),
    Column("mapping", String(64), nullable=True),
    # sealed eai.messages.MessageFacts JSON (qualified INS, PRT recipients, CI-SIS flags)
    Column("facts", LargeBinary, nullable=True),
    # Where the route sends the establishment's answers (routes.yaml business_acks);
    # NULL = none. A follow-up row (eai.messages.FollowUp: a ZAM after a DMP outcome...)
    # names the delivery whose outcome made it in follow_up_of.
    Column("return_to", String(64), nullable=True),
    Column("follow_up_of", Id, nullable=True),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until", Timestamp, nullable=True),
    Index("ix_deliveries_queue", "destination", "status", "message_id", "id"),
    Index("ix_deliveries_message", "message_id"),
    # The pipeline releases a patient's held deliveries each time an identity qualifies
    # (most messages): without it, each release scans the whole outbox.
    Index("ix_deliveries_patient", "patient_key", "status"),
)

# Payloads over ``eai.store._bodies.INLINE_MAX`` bytes (sealed), out of their row: SQLite
# writes a row again whole, overflow pages included, on any UPDATE that changes its size
# (a lease, a status), so a 300 kB ORU was written five times over. The row's ``payload``
# then holds the marker b"" (a sealed payload is never empty); see ``_bodies``.
message_bodies = Table(
    "message_bodies",
    metadata,
    Column("message_id", Id, ForeignKey("messages.id"), primary_key=True, autoincrement=False),
    Column("payload", LargeBinary, nullable=False),
)

delivery_bodies = Table(
    "delivery_bodies",
    metadata,
    Column("delivery_id", Id, ForeignKey("deliveries.id"), primary_key=True, autoincrement=False),
    Column("payload", LargeBinary, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("message_id", Id, nullable=True),
    Column("delivery_id", Id, nullable=True),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Index("ix_events_message", "message_id"),
    Index("ix_events_delivery", "delivery_id"),
)

destination_state = Table(
    "destination_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("paused", Boolean, nullable=False, default=False),
    Column("updated_at", Timestamp, nullable=False),
)

anomalies = Table(
    "identity_anomalies",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("facility", String(128), nullable=False),
    Column("message_id", Id, nullable=True),
    Column("control_id", String(128), nullable=False, default=""),
    Column("rule", String(64), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("explanation", Text, nullable=False),
    Column("notified_at", Timestamp, nullable=True),
    Index("ix_anomalies_facility_at", "facility", "at"),
    Index("ix_anomalies_pending", "notified_at", "severity"),
)

ACTIVE_DELIVERY = ("pending", "retrying")

# Cross-references (facility, local id) <-> regional id <-> INS, with history: a row per
# state, valid_to NULL for the current one (eai/store/_xref.py). Local ids are keyed hashes
# (cipher.hash_id, as message_patient_ids); the INS is sealed (AES-GCM) plus a keyed hash;
# the regional id is an opaque platform identifier, in clear. alias_of: after an A40 merge or
# an A47 change, the local id hash this one now stands for (its value sealed in alias_sealed).
identity_xref = Table(
    "identity_xref",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("facility", String(128), nullable=False),
    Column("local_id_hash", String(64), nullable=False),
    Column("regional_id", String(128), nullable=False, default=""),
    Column("ins_hash", String(64), nullable=False, default=""),
    Column("ins_sealed", LargeBinary, nullable=True),
    Column("alias_of", String(64), nullable=True),
    Column("alias_sealed", LargeBinary, nullable=True),
    Column("reason", String(16), nullable=False),
    Column("valid_from", Timestamp, nullable=False),
    Column("valid_to", Timestamp, nullable=True),
    Index("ix_xref_local", "facility", "local_id_hash", "valid_to"),
    Index("ix_xref_regional", "regional_id"),
    Index("ix_xref_ins", "ins_hash"),
)

identity_merges = Table(
    "identity_merges",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("facility", String(128), nullable=False),
    Column("kind", String(8), nullable=False),  # A40 merge, A47 identifier change
    Column("surviving_hash", String(64), nullable=False),
    Column("merged_hash", String(64), nullable=False),
    Column("ids_sealed", LargeBinary, nullable=False),  # {"surviving": ..., "merged": ...}
    Column("regional_before", String(128), nullable=False, default=""),
    Column("regional_after", String(128), nullable=False, default=""),
    Index("ix_merges_merged", "facility", "merged_hash"),
    Index("ix_merges_surviving", "facility", "surviving_hash"),
)

# Technical alerts (eai/alerts): one row per rule and scope, its state machine
# (ok -> pending -> firing -> resolved) kept here so a restart neither loses nor repeats
# an alert; the mails owed (one row per recipient, sent once, grouped per recipient);
# the silences. No patient data: scopes are listener, destination and facility names.
alert_state = Table(
    "alert_state",
    metadata,
    Column("rule", String(32), primary_key=True),
    Column("scope", String(256), primary_key=True),
    Column("owner", String(128), nullable=False, default=""),  # "" or the node of a local probe
    Column("state", String(12), nullable=False),
    Column("since", Timestamp, nullable=False),
    Column("fired_at", Timestamp, nullable=True),
    Column("resolved_at", Timestamp, nullable=True),
    Column("value", Text, nullable=False, default=""),
    Column("facilities", Text, nullable=False, default=""),
    Column("notified", Boolean, nullable=False, default=False),
    Column("last_mail_at", Timestamp, nullable=True),
    Column("mails", Integer, nullable=False, default=0),
    Column("updated_at", Timestamp, nullable=False),
)

alert_notices = Table(
    "alert_notices",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("rule", String(32), nullable=False),
    Column("scope", String(256), nullable=False),
    Column("kind", String(12), nullable=False),  # firing | repeat | resolved
    Column("recipient", String(256), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("detail", Text, nullable=False, default=""),
    Column("sent_at", Timestamp, nullable=True),
    Column("claim_owner", String(128), nullable=True),
    Column("claim_until", Timestamp, nullable=True),
    Index("ix_alert_notices_unsent", "sent_at", "recipient"),
)

alert_silences = Table(
    "alert_silences",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("rule", String(32), nullable=False),
    Column("scope", String(256), nullable=False, default=""),  # "": every scope
    Column("created_at", Timestamp, nullable=False),
    Column("ends_at", Timestamp, nullable=False),
    Column("author", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_alert_silences_ends", "ends_at"),
)

# Web console accounts (eai/console, eai/store/_accounts.py): Argon2id hashes, never a
# password; failures in a row and the lock-out they caused.
accounts = Table(
    "console_accounts",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(256), nullable=False),
    Column("disabled", Boolean, nullable=False, default=False),
    Column("failures", Integer, nullable=False, default=0),
    Column("locked_until", Timestamp, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("last_login_at", Timestamp, nullable=True),
)

# The engine nodes sharing this journal (eai/store/_nodes.py): one row per running process,
# its heartbeat refreshed every second; a node whose heartbeat is stale is dead, and the
# survivors release its leases. No patient data.
nodes = Table(
    "eai_nodes",
    metadata,
    Column("id", String(128), primary_key=True),  # the lease owner: unique per process
    Column("name", String(128), nullable=False),  # engine.node_id, or the host name
    Column("host", String(128), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Timestamp, nullable=False),
    Column("heartbeat_at", Timestamp, nullable=False),
)

# The console's 24 h sparklines (eai/store/_flows.py): per 15-minute interval and per
# listener, route or destination, how many messages (deliveries) and how many errors,
# rolled up once the interval is over, so the overview reads ~100 rows per flow instead
# of a day of the journal. No patient data: names and counts.
flow_buckets = Table(
    "flow_buckets",
    metadata,
    Column("bucket_start", Timestamp, primary_key=True),
    Column("kind", String(12), primary_key=True),  # listener | route | destination
    Column("name", String(256), primary_key=True),
    Column("total", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
)
