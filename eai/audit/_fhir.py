"""Audit records as FHIR R4 AuditEvent resources (IHE BALP patterns), and a Bundle of them.

Touches: nothing (builds JSON-ready dicts).

Following IHE Basic Audit Log Patterns (BALP): the person is the requesting agent
(``IRCP``, information recipient), the engine the agent serving the data
(``110152`` Destination Role ID), ``source`` the engine node (type 4, application
server); the patient is an entity of type 1 (Person) role 1 (Patient) whose
identifier is the journal's keyed hash (never the identifier itself), the message
an entity of type 2 (System Object). A payload read is BALP's PatientRead (``rest``
/ ``read``); the other actions use their DICOM event ID. The chain (sequence number,
previous MAC, MAC) travels in an extension so that a copy can be checked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from eai.audit._actions import action_spec
from eai.store import AuditRecord

__all__ = ["audit_bundle", "audit_event"]

DCM = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
BALP_PATIENT_READ = (
    "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.PatientRead"
)
PATIENT_HASH = "urn:eai:patient-id-hash"
MESSAGE_ID = "urn:eai:message-id"
CHAIN = "urn:eai:audit-chain"

# R4 AuditEvent.outcome: 0 success, 4 minor failure (refused), 8 serious failure
_OUTCOME = {"success": "0", "denied": "4", "failure": "8"}


def _instant(at: datetime) -> str:
    return at.replace(tzinfo=UTC).isoformat(timespec="microseconds")


def _user_agent(record: AuditRecord) -> dict[str, Any]:
    actor = record.actor
    agent: dict[str, Any] = {
        "type": {
            "coding": [
                {"system": PARTICIPATION, "code": "IRCP", "display": "information recipient"}
            ]
        },
        "who": {"identifier": {"system": f"urn:eai:{actor.kind}", "value": actor.name}},
        "requestor": True,
    }
    if actor.kind == "account" and actor.peer:
        agent["network"] = {"address": actor.peer, "type": "2"}  # 2: IP address
    elif actor.peer:
        agent["altId"] = actor.peer
    if actor.via:
        agent["name"] = f"{actor.name} via {actor.via}"
    return agent


def _entities(record: AuditRecord) -> list[dict[str, Any]]:
    entry = record.entry
    entities: list[dict[str, Any]] = []
    for digest in entry.patient.split():
        entities.append(
            {
                "what": {"identifier": {"system": PATIENT_HASH, "value": digest}},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    if entry.message_id is not None or entry.target:
        entity: dict[str, Any] = {
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
        }
        what: dict[str, Any] = {}
        if entry.message_id is not None:
            what["identifier"] = {"system": MESSAGE_ID, "value": str(entry.message_id)}
        if entry.target:
            what["display"] = entry.target
        entity["what"] = what
        if entry.detail:
            entity["description"] = entry.detail
        entities.append(entity)
    return entities


def audit_event(record: AuditRecord, source: str) -> dict[str, Any]:
    """One record as an R4 AuditEvent (JSON-ready); ``source``: the engine node's name."""
    spec = action_spec(record.entry.action)
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"eai-audit-{record.seq}",
        "extension": [
            {
                "url": CHAIN,
                "extension": [
                    {"url": "seq", "valueInteger": record.seq},
                    {"url": "prevMac", "valueString": record.prev_mac},
                    {"url": "mac", "valueString": record.mac},
                ],
            }
        ],
        "action": spec.action_code,
        "recorded": _instant(record.at),
        "outcome": _OUTCOME.get(record.entry.outcome, "8"),
        "agent": [
            _user_agent(record),
            {
                "type": {
                    "coding": [{"system": DCM, "code": "110152", "display": "Destination Role ID"}]
                },
                "who": {"display": f"eai {source}"},
                "requestor": False,
            },
        ],
        "source": {
            "site": source,
            "observer": {"display": f"eai {source}"},
            "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
        },
    }
    if spec.rest_read:
        event["type"] = {"system": EVENT_TYPE, "code": "rest", "display": "Restful Operation"}
        event["subtype"] = [{"system": RESTFUL, "code": "read", "display": "read"}]
        if record.entry.patient:
            event["meta"] = {"profile": [BALP_PATIENT_READ]}
    else:
        event["type"] = {"system": DCM, "code": spec.event_code, "display": spec.event_display}
        event["subtype"] = [
            {"system": "urn:eai:audit-action", "code": spec.name, "display": spec.summary}
        ]
    if record.entry.outcome != "success" and record.entry.detail:
        event["outcomeDesc"] = record.entry.detail
    entities = _entities(record)
    if entities:
        event["entity"] = entities
    return event


def audit_bundle(records: Iterable[AuditRecord], source: str, at: datetime) -> dict[str, Any]:
    """The records as a FHIR R4 ``collection`` Bundle of AuditEvents."""
    entries = [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{CHAIN}:{r.mac}')}",
            "resource": audit_event(r, source),
        }
        for r in records
    ]
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": _instant(at),
        "entry": entries,
    }
