"""The listing's SQL for SQLite, compiled ahead of time by ``eai.store._sql_ahead``.

Touches: nothing. Generated: do not edit (``python -m eai.store._sql_ahead --write``).
"""

# ruff: noqa: E501
from __future__ import annotations

from typing import Any

Statement = tuple[str, dict[str, Any]]
"""SQL with named parameters, and the values of those the statement holds."""

ACTIVE_DELIVERY = ("pending", "retrying")
DATETIME_STORAGE = (
    "%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d"
)
"""How SQLAlchemy stores a DateTime in SQLite (a string: compared as one)."""

WHERE = "{where}"
MESSAGES: dict[tuple[bool, bool, bool], Statement] = {
    (False, False, False): (
        "SELECT messages.id, messages.listener, messages.received_at, messages.content_type, messages.status, messages.peer, messages.control_id, messages.message_type, messages.sending_application, messages.sending_facility, messages.dedup_key, messages.size, messages.reject_reason, messages.routes, messages.processed_at, messages.lease_owner, messages.lease_until, messages.order_key \nFROM messages ORDER BY messages.id DESC",
        {},
    ),
    (False, False, True): (
        "SELECT messages.id, messages.listener, messages.received_at, messages.content_type, messages.status, messages.peer, messages.control_id, messages.message_type, messages.sending_application, messages.sending_facility, messages.dedup_key, messages.size, messages.reject_reason, messages.routes, messages.processed_at, messages.lease_owner, messages.lease_until, messages.order_key \nFROM messages ORDER BY messages.id DESC\n LIMIT :limit OFFSET :param_1",
        {"param_1": 0},
    ),
    (False, True, False): (
        "SELECT messages.id, messages.listener, messages.received_at, messages.content_type, messages.status, messages.peer, messages.control_id, messages.message_type, messages.sending_application, messages.sending_facility, messages.dedup_key, messages.size, messages.reject_reason, messages.routes, messages.processed_at, messages.lease_owner, messages.lease_until, messages.order_key \nFROM messages ORDER BY messages.id",
        {},
    ),
    (False, True, True): (
        "SELECT messages.id, messages.listener, messages.received_at, messages.content_type, messages.status, messages.peer, messages.control_id, messages.message_type, messages.sending_application, messages.sending_facility, messages.dedup_key, messages.size, messages.reject_reason, messages.routes, messages.processed_at, messages.lease_owner, messages.lease_until, messages.order_key \nFROM messages ORDER BY messages.id\n LIMIT :limit OFFSET :param_1",
        {"param_1": 0},
    ),
    (True, False, False): (
        "SELECT messages.id, messages.listener, messages.received_at, messages.content_type, messages.status, messages.peer, messages.control_id, messages.message_type, messages.sending_application, messages.sending_facility, messages.dedup_key, messages.size, messages.reject_reason, messages.routes, messages.processed_at, messages.lease_owner, messages.lease_until, messages.order_key \nFROM messages \nWHERE {where} ORDER BY messages.id DESC",
        {},
    ),
    (True, False, True): (
        "SELECT messages.id, messages.listener, messages.received_at, messages.content_type, messages.status, messages.peer, messages.control_id, messages.message_type, messages.sending_application, messages.sending_facility, messages.dedup_key, messages.size, messages.reject_reason, messages.routes, messages.processed_at, messages.lease_owner, messages.lease_until, messages.order_key \nFROM messages \nWHERE {where} ORDER BY messages.id DESC\n LIMIT :limit OFFSET :param_1",
        {"param_1": 0},
    ),
    (True, True, False): (
        "SELECT messages.id, messages.listener, messages.received_at, messages.content_type, messages.status, messages.peer, messages.control_id, messages.message_type, messages.sending_application, messages.sending_facility, messages.dedup_key, messages.size, messages.reject_reason, messages.routes, messages.processed_at, messages.lease_owner, messages.lease_until, messages.order_key \nFROM messages \nWHERE {where} ORDER BY messages.id",
        {},
    ),
    (True, True, True): (
        "SELECT messages.id, messages.listener, messages.received_at, messages.content_type, messages.status, messages.peer, messages.control_id, messages.message_type, messages.sending_application, messages.sending_facility, messages.dedup_key, messages.size, messages.reject_reason, messages.routes, messages.processed_at, messages.lease_owner, messages.lease_until, messages.order_key \nFROM messages \nWHERE {where} ORDER BY messages.id\n LIMIT :limit OFFSET :param_1",
        {"param_1": 0},
    ),
}
"""By (filtered, oldest first, limited): ``_listing.messages_select``."""
FILTERS: dict[str, str] = {
    "status": "messages.status = :status",
    "since": "messages.received_at >= :since",
    "until": "messages.received_at <= :until",
    "listener": "messages.listener = :listener",
    "type_pattern": "messages.message_type LIKE :type_pattern",
    "type": "messages.message_type = :message_type OR messages.message_type LIKE :type_prefix",
    "patient": "messages.id IN (SELECT message_patient_ids.message_id \nFROM message_patient_ids \nWHERE message_patient_ids.id_hash = :patient_hash)",
    "ids": "messages.id IN (__[POSTCOMPILE_ids])",
}
PAYLOADS: Statement = (
    "SELECT messages.id, coalesce((SELECT message_bodies.payload \nFROM message_bodies \nWHERE message_bodies.message_id = messages.id), messages.payload) AS payload \nFROM messages \nWHERE messages.id IN (__[POSTCOMPILE_ids])",
    {},
)
DELIVERIES: Statement = (
    "SELECT deliveries.id, deliveries.message_id, deliveries.destination, deliveries.route, deliveries.patient_key, deliveries.control_id, deliveries.status, deliveries.attempts, deliveries.created_at, deliveries.next_attempt_at, deliveries.delivered_at, deliveries.last_error, deliveries.payload, deliveries.resend_of, deliveries.media_type, deliveries.mapping, deliveries.facts, deliveries.return_to, deliveries.follow_up_of, deliveries.lease_owner, deliveries.lease_until \nFROM deliveries \nWHERE deliveries.message_id IN (__[POSTCOMPILE_ids]) ORDER BY deliveries.id",
    {},
)
KEY_CHECK: Statement = (
    'SELECT eai_meta.value \nFROM eai_meta \nWHERE eai_meta."key" = :key_1',
    {"key_1": "key_check"},
)
MESSAGE_DATETIMES = ("received_at", "processed_at", "lease_until")
DELIVERY_DATETIMES = ("created_at", "next_attempt_at", "delivered_at", "lease_until")
TABLES: dict[str, str] = {
    "alert_notices": "id rule scope kind recipient created_at detail sent_at claim_owner claim_until",
    "alert_silences": "id rule scope created_at ends_at author reason",
    "alert_state": "rule scope owner state since fired_at resolved_at value facilities notified last_mail_at mails updated_at",
    "console_accounts": "name role password_hash disabled failures locked_until created_at updated_at last_login_at",
    "destination_state": "name paused updated_at",
    "eai_meta": "key value",
    "eai_nodes": "id name host pid started_at heartbeat_at",
    "events": "id at message_id delivery_id kind detail",
    "flow_buckets": "bucket_start kind name total errors",
    "identity_anomalies": "id at facility message_id control_id rule severity explanation notified_at",
    "identity_merges": "id at facility kind surviving_hash merged_hash ids_sealed regional_before regional_after",
    "identity_xref": "id facility local_id_hash regional_id ins_hash ins_sealed alias_of alias_sealed reason valid_from valid_to",
    "messages": "id listener received_at content_type status peer control_id message_type sending_application sending_facility dedup_key size payload ack reject_reason routes processed_at lease_owner lease_until order_key",
    "deliveries": "id message_id destination route patient_key control_id status attempts created_at next_attempt_at delivered_at last_error payload resend_of media_type mapping facts return_to follow_up_of lease_owner lease_until",
    "message_bodies": "message_id payload",
    "message_patient_ids": "message_id id_hash",
    "delivery_bodies": "delivery_id payload",
}
"""The columns of each table, space-separated: a journal lacking one is prepared
by ``_db`` first."""
INDEXES = (
    "ix_alert_notices_unsent",
    "ix_alert_silences_ends",
    "ix_events_delivery",
    "ix_events_message",
    "ix_anomalies_facility_at",
    "ix_anomalies_pending",
    "ix_merges_merged",
    "ix_merges_surviving",
    "ix_xref_ins",
    "ix_xref_local",
    "ix_xref_regional",
    "ix_messages_control_id",
    "ix_messages_dedup",
    "ix_messages_listener",
    "ix_messages_received_at",
    "ix_messages_received_key",
    "ix_messages_status_id",
    "ix_messages_type",
    "ix_deliveries_message",
    "ix_deliveries_patient",
    "ix_deliveries_queue",
    "ix_patient_ids_hash",
    "ix_patient_ids_message",
)
