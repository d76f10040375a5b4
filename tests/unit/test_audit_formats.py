"""The audit trail's formats, without I/O: the MAC's canonical form, the RFC 5424/5425
frame, the DICOM audit message, the FHIR AuditEvent, the ``audit:`` config."""

from __future__ import annotations

import json
from datetime import datetime
from xml.etree import ElementTree as ET

import pytest
from fhir.resources.R4B.auditevent import AuditEvent

from eai.audit import (
    ACTIONS,
    AuditActor,
    AuditEntry,
    AuditRecord,
    audit_event,
    dicom_audit_message,
    syslog_frame,
)
from eai.config import AuditConfig, SyslogConfig, load_config_text
from eai.errors import ConfigError
from eai.store import Cipher
from eai.store import audit_record_mac as record_mac

AT = datetime(2026, 12, 7, 10, 30, 1, 123456)
ACTOR = AuditActor("alice", "os-user", "uid 1000, pid 77", "admin-socket")
READ = AuditEntry("read-raw", "message 12", 12, "ab" * 20, "success", "reason: ticket 7")


def _record(entry: AuditEntry = READ, actor: AuditActor = ACTOR) -> AuditRecord:
    return AuditRecord(3, AT, actor, entry, "1" * 64, "f" * 64)


def test_the_mac_covers_every_field_and_the_previous_mac() -> None:
    cipher = Cipher(b"k" * 32)
    base = record_mac(cipher, "0" * 64, 1, AT, ACTOR, READ)
    assert base == record_mac(Cipher(b"k" * 32), "0" * 64, 1, AT, ACTOR, READ)
    changed = [
        record_mac(cipher, "1" * 64, 1, AT, ACTOR, READ),
        record_mac(cipher, "0" * 64, 2, AT, ACTOR, READ),
        record_mac(cipher, "0" * 64, 1, AT.replace(microsecond=0), ACTOR, READ),
        record_mac(
            cipher, "0" * 64, 1, AT, AuditActor("bob", "os-user", ACTOR.peer, ACTOR.via), READ
        ),
        record_mac(cipher, "0" * 64, 1, AT, ACTOR, AuditEntry("read-raw", "message 13", 12)),
        record_mac(Cipher(b"j" * 32), "0" * 64, 1, AT, ACTOR, READ),
    ]
    assert base not in changed and len(set(changed)) == len(changed)


def test_syslog_frame_is_octet_counted_rfc5424() -> None:
    cfg = SyslogConfig(host="siem.example")
    frame = syslog_frame(_record(), cfg, "node-1")
    count, _, message = frame.partition(b" ")
    assert int(count) == len(message)
    header, _, body = message.partition(b"\xef\xbb\xbf")
    assert header == (
        b'<85>1 2026-12-07T10:30:01.123456Z node-1 eai - IHE+RFC-3881 [meta sequenceId="3"] '
    )
    assert ET.fromstring(body.decode()).tag == "AuditMessage"
    fhir = syslog_frame(_record(), cfg.model_copy(update={"format": "fhir"}), "node-1")
    body = fhir.partition(b"\xef\xbb\xbf")[2]
    assert b" IHE+FHIR " in fhir and json.loads(body)["resourceType"] == "AuditEvent"


def test_dicom_audit_message() -> None:
    root = ET.fromstring(dicom_audit_message(_record(), "node-1"))
    event = root.find("EventIdentification")
    assert event is not None
    assert event.attrib == {
        "EventActionCode": "R",
        "EventDateTime": "2026-12-07T10:30:01.123456+00:00",
        "EventOutcomeIndicator": "0",
    }
    assert event.find("EventID").attrib["csd-code"] == "110110"  # type: ignore[union-attr]
    person, engine = root.findall("ActiveParticipant")
    assert person.attrib["UserID"] == "alice" and person.attrib["UserIsRequestor"] == "true"
    assert person.attrib["AlternativeUserID"] == "uid 1000, pid 77"
    assert engine.find("RoleIDCode").attrib["csd-code"] == "110152"  # type: ignore[union-attr]
    patient, message = root.findall("ParticipantObjectIdentification")
    assert patient.attrib["ParticipantObjectID"] == "ab" * 20
    assert patient.attrib["ParticipantObjectTypeCodeRole"] == "1"
    assert message.attrib["ParticipantObjectID"] == "message 12"
    refused = AuditEntry("login-failed", outcome="denied", detail="wrong password")
    root = ET.fromstring(
        dicom_audit_message(_record(refused, AuditActor("eve", "account", "192.0.2.5")), "n")
    )
    assert root.find("EventIdentification").attrib["EventOutcomeIndicator"] == "4"  # type: ignore[union-attr]
    assert root.find("ActiveParticipant").attrib["NetworkAccessPointID"] == "192.0.2.5"  # type: ignore[union-attr]


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_action_is_a_valid_fhir_auditevent(action: str) -> None:
    event = AuditEvent.model_validate(audit_event(_record(AuditEntry(action, "x")), "node-1"))
    assert event.action == ACTIONS[action].action_code
    assert event.recorded.isoformat().startswith("2026-12-07T10:30:01.123456")


def test_audit_config() -> None:
    assert AuditConfig().retention == 3 * 365 * 86400.0
    config = load_config_text("audit:\n  retention: 5y\n  purge_every: 1h\n")
    assert config.audit.retention == 5 * 365 * 86400.0 and config.audit.purge_every == 3600
    assert config.audit.syslog is None
    with pytest.raises(ConfigError, match="audit.syslog.format"):
        load_config_text("audit:\n  syslog: {host: siem, format: cef}\n")
