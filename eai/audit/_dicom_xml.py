"""Audit records as IHE ATNA / DICOM PS3.15 (A.5) audit messages, in XML.

Touches: nothing (builds XML text).

The schema's elements (PS3.15 A.5.1): ``EventIdentification`` (EventActionCode,
EventDateTime, EventOutcomeIndicator 0 / 4 / 8, ``EventID`` from CID 400), the
person as the requesting ``ActiveParticipant`` (UserID, AlternativeUserID = uid/pid,
network access point for a console's address), the engine as the other one (role
110152 Destination Role ID), ``AuditSourceIdentification`` (type 4, application
server), and ``ParticipantObjectIdentification`` for the patient (type 1 person,
role 1 patient, ID type code 2 "Patient Number": the keyed hash, never the id) and
the message (type 2 system object). The chain (seq, MAC) is a
``ParticipantObjectDetail`` (base64, as the schema types it) of the message object, or
of an ``audit-record`` object.
"""

from __future__ import annotations

import base64
from datetime import UTC
from xml.etree import ElementTree as ET

from eai.audit._actions import action_spec
from eai.store import AuditRecord

__all__ = ["dicom_audit_message"]

_OUTCOME = {"success": "0", "denied": "4", "failure": "8"}


def _code(parent: ET.Element, tag: str, code: str, system: str, text: str) -> None:
    ET.SubElement(parent, tag, {"csd-code": code, "codeSystemName": system, "originalText": text})


def dicom_audit_message(record: AuditRecord, source: str) -> str:
    """One record as a DICOM ``AuditMessage`` (one line of XML, no declaration)."""
    spec = action_spec(record.entry.action)
    entry, actor = record.entry, record.actor
    root = ET.Element("AuditMessage")
    event = ET.SubElement(
        root,
        "EventIdentification",
        {
            "EventActionCode": spec.action_code,
            "EventDateTime": record.at.replace(tzinfo=UTC).isoformat(timespec="microseconds"),
            "EventOutcomeIndicator": _OUTCOME.get(entry.outcome, "8"),
        },
    )
    _code(event, "EventID", spec.event_code, "DCM", spec.event_display)
    _code(event, "EventTypeCode", spec.name, "eai-audit-action", spec.summary)
    if entry.outcome != "success" and entry.detail:
        ET.SubElement(event, "EventOutcomeDescription").text = entry.detail
    person = {"UserID": actor.name, "UserIsRequestor": "true"}
    if actor.kind == "account" and actor.peer:
        person |= {"NetworkAccessPointID": actor.peer, "NetworkAccessPointTypeCode": "2"}
    elif actor.peer:
        person["AlternativeUserID"] = actor.peer
    if actor.via:
        person["UserName"] = f"{actor.name} via {actor.via}"
    ET.SubElement(root, "ActiveParticipant", person)
    engine = ET.SubElement(
        root, "ActiveParticipant", {"UserID": f"eai {source}", "UserIsRequestor": "false"}
    )
    _code(engine, "RoleIDCode", "110152", "DCM", "Destination Role ID")
    src = ET.SubElement(root, "AuditSourceIdentification", {"AuditSourceID": source})
    _code(src, "AuditSourceTypeCode", "4", "DCM", "Application Server")
    for digest in entry.patient.split():
        patient = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": digest,
                "ParticipantObjectTypeCode": "1",
                "ParticipantObjectTypeCodeRole": "1",
            },
        )
        _code(patient, "ParticipantObjectIDTypeCode", "2", "RFC-3881", "Patient Number")
    obj_id = f"message {entry.message_id}" if entry.message_id is not None else "audit-record"
    obj = ET.SubElement(
        root,
        "ParticipantObjectIdentification",
        {
            "ParticipantObjectID": obj_id,
            "ParticipantObjectTypeCode": "2",
            "ParticipantObjectTypeCodeRole": "4",
        },
    )
    _code(obj, "ParticipantObjectIDTypeCode", "eai-object", "eai", entry.target or obj_id)
    for name, value in (
        ("seq", str(record.seq)),
        ("prev_mac", record.prev_mac),
        ("mac", record.mac),
    ):
        encoded = base64.b64encode(value.encode("ascii")).decode("ascii")  # xs:base64Binary
        ET.SubElement(obj, "ParticipantObjectDetail", {"type": name, "value": encoded})
    if entry.detail and entry.outcome == "success":
        ET.SubElement(obj, "ParticipantObjectDescription").text = entry.detail
    return ET.tostring(root, encoding="unicode")
