"""The audit trail of every access to health data: record, check, export, forward, purge.

Touches: DB (through :mod:`eai.store`), network (the SIEM forwarder), files (its TLS
material).

Every auditable action calls :func:`record` (or goes through an :mod:`eai.store`
support action, which records in the same transaction); a record is chained to the
one before by HMAC-SHA256, so ``eai audit verify`` finds a record deleted, edited or
moved. See docs/supervision.md, "Audit trail".
"""

from eai.audit._actions import ACTIONS, OUTCOMES, ActionSpec, action_spec, register_action
from eai.audit._dicom_xml import dicom_audit_message
from eai.audit._fhir import audit_bundle, audit_event
from eai.audit._record import (
    account,
    caller_actor,
    engine_actor,
    os_user,
    record,
    reload_recorder,
)
from eai.audit._service import AuditService, purge_expired
from eai.audit._syslog import SyslogForwarder, syslog_frame
from eai.store import AuditActor, AuditEntry, AuditRecord

Actor = AuditActor

__all__ = [
    "ACTIONS",
    "OUTCOMES",
    "ActionSpec",
    "Actor",
    "AuditActor",
    "AuditEntry",
    "AuditRecord",
    "AuditService",
    "SyslogForwarder",
    "audit_bundle",
    "audit_event",
    "dicom_audit_message",
    "purge_expired",
    "syslog_frame",
    "account",
    "action_spec",
    "caller_actor",
    "engine_actor",
    "os_user",
    "record",
    "register_action",
    "reload_recorder",
]
