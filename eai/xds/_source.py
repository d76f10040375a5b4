"""One CDA document to describe with XDS metadata, read from an outbox item (ORU/MDM or CDA).

Touches: nothing.

A CI-SIS ORU^R01 or MDM^T02/T10 (``application/hl7-v2``, as received) carries the CDA in
its first document OBX-5 (base64 ED) and the message's part of the metadata: PV1-2 (the
patient class, for the submission set's contentTypeCode) and PID-5/7/8/11 (the
document entry's sourcePatientInfo). A CDA alone (``application/cda+xml``) carries only
the document: sourcePatientInfo is then read from its recordTarget. The CI-SIS flags, the
PRT participants and the qualified INS come with the item's facts.

Shared by the destinations that send XDS metadata (the DMP's ITI-41, MSSanté's XDM
``METADATA.XML``); each adds its own checks (the DMP takes a qualified INS only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from eai.errors import InputError, PermanentDeliveryError
from eai.hl7 import Hl7Message, Segment, embedded_documents, escape, parse
from eai.messages import MEDIA_CDA_XML, MEDIA_HL7V2, OutboxItem, Recipient
from eai.xds._header import DocumentHeader, read_header
from eai.xds._settings import ACCEPTS

__all__ = ["ACCEPTS", "Publication", "read_publication"]


@dataclass(frozen=True, slots=True, repr=False)
class Publication:
    """One document to submit and what the metadata is made of (patient data: no repr)."""

    document: bytes
    """The exact bytes sent (hash and size are theirs)."""
    header: DocumentHeader
    ins: str
    """The qualified INS, "" when the identity is not qualified (the metadata then names
    the patient by the document's local identifier)."""
    ins_oid: str
    patient_class: str = ""
    """PV1-2 (I, O, R, N, E...), "" for a CDA alone."""
    source_patient_info: tuple[str, ...] = ()
    """``PID-5|...``, ``PID-7|...``, ``PID-8|...``, ``PID-11|...`` lines."""
    flags: Mapping[str, str] = field(default_factory=dict)
    sender: Recipient | None = None
    """The PRT ``SB`` (sent by) participant, when the message names one."""
    control_id: str = ""


def read_publication(item: OutboxItem, message: Hl7Message | None = None) -> Publication:
    """Read ``item`` into a :class:`Publication` (``message``: the item's HL7 v2 payload
    when the caller has already parsed it).

    Raises PermanentDeliveryError when the item carries no readable CDA or when the CDA
    header lacks a required element (named)."""
    sender = next((r for r in item.facts.recipients if r.role == "SB"), None)
    if item.media_type == MEDIA_CDA_XML:
        header = read_header(item.payload)
        return Publication(
            item.payload,
            header,
            item.facts.ins,
            item.facts.ins_oid,
            source_patient_info=_info_from_header(header),
            flags=item.facts.flags,
            sender=sender,
            control_id=item.control_id,
        )
    if item.media_type != MEDIA_HL7V2:
        raise PermanentDeliveryError(
            f"XDS metadata is read from a CDA document, in {' or '.join(ACCEPTS)}, not "
            f"{item.media_type}"
        )
    try:
        message = message or parse(item.payload)
        documents = embedded_documents(message)
    except (InputError, ValueError) as exc:
        raise PermanentDeliveryError(f"the HL7 v2 message is not readable: {exc}") from exc
    if not documents:
        raise PermanentDeliveryError("the HL7 v2 message carries no document OBX (OBX-5 ED)")
    document = documents[0].data
    header = read_header(document)
    return Publication(
        document,
        header,
        item.facts.ins,
        item.facts.ins_oid,
        patient_class=message.get("PV1-2").strip().upper(),
        source_patient_info=_info_from_pid(message) or _info_from_header(header),
        flags=item.facts.flags,
        sender=sender,
        control_id=item.control_id,
    )


def _components(segment: Segment, field_number: int, repetition: int, count: int) -> str:
    values = [
        escape(segment.get(field_number, repetition, c), "^~\\&", "|") for c in range(1, count + 1)
    ]
    return "^".join(values).rstrip("^")


def _info_from_pid(message: Hl7Message) -> tuple[str, ...]:
    pid = message.segment("PID")
    if pid is None:
        return ()
    lines: list[str] = []
    name = _components(pid, 5, 1, 7)
    if name:
        lines.append(f"PID-5|{name}")
    for number in (7, 8):
        value = escape(pid.get(number, 1, 1), "^~\\&", "|")
        if value:
            lines.append(f"PID-{number}|{value}")
    places = pid.get_all(11, 7)
    for repetition, kind in enumerate(places, start=1):
        if kind == "BDL":
            lines.append(f"PID-11|{_components(pid, 11, repetition, 9)}")
            break
    return tuple(lines)


def _info_from_header(header: DocumentHeader) -> tuple[str, ...]:
    lines: list[str] = []
    if header.patient_family:
        esc = [escape(v, "^~\\&", "|") for v in (header.patient_family, header.patient_given)]
        lines.append(f"PID-5|{esc[0]}^{esc[1]}^^^^^L")
    if header.patient_birth:
        lines.append(f"PID-7|{header.patient_birth[:8]}")
    if header.patient_gender:
        lines.append(f"PID-8|{header.patient_gender}")
    if header.patient_birthplace_code:
        lines.append(f"PID-11|^^^^^^BDL^^{header.patient_birthplace_code}")
    return tuple(lines)
