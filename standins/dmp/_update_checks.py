"""Check one ITI-57 Update Document Set as the DMP registry would: envelope, VIHF, status change.

Touches: files (the XSDs under ``tests/xsd/xds``, once, through :mod:`._checks`).

The DMP deletes a document (TD3.3c, DMPi v2.10.0, as ``ansforge/IG-FHIR-PDSM4DMP-EEDS``
``index.md`` maps it) with an ITI-57 changing its availabilityStatus to
``urn:asip:ci-sis:2010:StatusType:Deleted`` (ANS TRE_R270 AvailabilityStatus). What is
checked, and against which published format:

- the HTTP Content-Type: ``application/soap+xml`` (SOAP 1.2, RFC 3902) whose ``action``
  parameter, when given, is ITI-57's; or an MTOM package as for ITI-41;
- the envelope against the W3C SOAP 1.2 schema; WS-Addressing ``Action``
  ``urn:ihe:iti:2010:UpdateDocumentSet`` with ``mustUnderstand``, ``MessageID``, ``To`` =
  this endpoint; the VIHF's attributes (its signature: xmlsec1, in the server);
- the Body's ``lcm:SubmitObjectsRequest`` against the OASIS ebRS 3.0 / ebRIM 3.0 schemas;
- the metadata rules (IHE XDS Metadata Update, ITI-57; the same rules IPF's validator
  applies): one submission set with its required attributes, its patientId the VIHF's
  resource-id and its uniqueId new; no document entry (this registry takes status changes
  only); at least one ``UpdateAvailabilityStatus`` association whose source is the
  submission set, with exactly one ``OriginalStatus`` and one ``NewStatus``, the new
  status one of ebRIM's or TRE_R270's; its target a registered entry
  (``UnresolvedReferenceException``) of the same patient (``XDSPatientIdDoesNotMatch``)
  whose current status is the ``OriginalStatus`` (``XDSMetadataUpdateError``, naming the
  current status: a deletion retried after its answer was lost is told the entry is
  already ``Deleted``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from email import policy
from email.parser import BytesParser

from lxml import etree

from standins.dmp._checks import (
    NS,
    Checked,
    RequestRefused,
    check_envelope,
    check_header,
    check_request_parts,
    check_submission_set,
    resource_id,
    schemas,
)

__all__ = ["STATUSES", "UPDATE_ACTION", "check_update"]

UPDATE_ACTION = "urn:ihe:iti:2010:UpdateDocumentSet"
_UPDATE = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
STATUSES = frozenset(
    {
        "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved",
        "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated",
        "urn:asip:ci-sis:2010:StatusType:Archived",
        "urn:asip:ci-sis:2010:StatusType:Deleted",
    }
)
"""The availability statuses a DMP entry may take (ebRIM 3.0, ANS TRE_R270)."""


def _envelope_bytes(content_type: str, body: bytes) -> bytes:
    head = BytesParser(policy=policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    )
    if head.get_content_type() == "multipart/related":
        return check_request_parts(content_type, body, UPDATE_ACTION)
    if head.get_content_type() != "application/soap+xml":
        raise RequestRefused(
            f"Content-Type {head.get_content_type()}: SOAP 1.2 needs application/soap+xml"
        )
    action = head.get_param("action", header="content-type")
    if action is not None and action != UPDATE_ACTION:
        raise RequestRefused(f"Content-Type action {action!r} is not {UPDATE_ACTION}")
    return body


def _values(owner: etree._Element, name: str) -> list[str]:
    return [
        v.text or ""
        for v in owner.xpath(f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value", namespaces=NS)
    ]


def check_update(
    content_type: str,
    body: bytes,
    endpoint: str,
    entries: Mapping[str, tuple[str, str]],
    registered: Collection[str],
) -> tuple[Checked, etree._Element]:
    """Check one ITI-57 request against the registry's ``entries`` (entryUUID ->
    (patientId, status)) and its ``registered`` unique ids. Returns what it carried (its
    metadata errors, ``updates`` to apply on Success) and the VIHF assertion; raises
    RequestRefused (a SOAP fault) for what is no ITI-57 request."""
    checked = Checked(envelope=_envelope_bytes(content_type, body))
    envelope = check_envelope(checked.envelope)
    assertion = check_header(envelope, endpoint, checked, UPDATE_ACTION)
    request = envelope.find(f"soap:Body/{{{_LCM}}}SubmitObjectsRequest", NS)
    if request is None:
        raise RequestRefused("the Body holds no lcm:SubmitObjectsRequest")
    _, xsd = schemas()
    if not xsd.validate(request):
        error = xsd.error_log.last_error
        said = f"line {error.line}: {error.message}" if error is not None else "invalid"
        checked.errors.append(("XDSRegistryMetadataError", f"ebRS 3.0 schema: {said}"))
        return checked, assertion
    objects = request.find("rim:RegistryObjectList", NS)
    if objects is None:
        raise RequestRefused("no RegistryObjectList")
    err = checked.errors
    ss = check_submission_set(objects, resource_id(assertion), checked)
    if ss is None:
        return checked, assertion
    unique_ids = [
        str(e.get("value", ""))
        for e in ss.iterfind(
            "rim:ExternalIdentifier[@identificationScheme="
            "'urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8']",
            NS,
        )
    ]
    for unique_id in unique_ids:
        if unique_id in registered:
            err.append(
                ("XDSDuplicateUniqueIdInRegistry", f"uniqueId {unique_id} already registered")
            )
    checked.unique_ids = unique_ids
    if objects.find("rim:ExtrinsicObject", NS) is not None:
        err.append(
            ("XDSMetadataUpdateError", "this registry takes availability status changes only")
        )
    updates = [
        a for a in objects.iterfind("rim:Association", NS) if a.get("associationType") == _UPDATE
    ]
    if not updates:
        err.append(("XDSMetadataUpdateError", "no UpdateAvailabilityStatus association"))
    for association in updates:
        _check_status_change(association, str(ss.get("id")), entries, checked)
    return checked, assertion


def _check_status_change(
    association: etree._Element,
    submission_set: str,
    entries: Mapping[str, tuple[str, str]],
    checked: Checked,
) -> None:
    err = checked.errors
    target = str(association.get("targetObject", ""))
    if association.get("sourceObject") != submission_set:
        err.append(
            (
                "XDSMetadataUpdateError",
                "UpdateAvailabilityStatus: the source is not the submission set",
            )
        )
        return
    original, new = _values(association, "OriginalStatus"), _values(association, "NewStatus")
    if len(original) != 1 or len(new) != 1:
        err.append(
            (
                "XDSMetadataUpdateError",
                "UpdateAvailabilityStatus needs one OriginalStatus and one NewStatus",
            )
        )
        return
    if new[0] not in STATUSES:
        err.append(("XDSMetadataUpdateError", f"NewStatus {new[0]} is no availability status"))
        return
    if target not in entries:
        err.append(("UnresolvedReferenceException", f"{target} is no registered document entry"))
        return
    patient, status = entries[target]
    if patient != checked.patient_id:
        err.append(("XDSPatientIdDoesNotMatch", f"{target} belongs to another patient"))
    elif status != original[0]:
        err.append(
            (
                "XDSMetadataUpdateError",
                f"{target}: OriginalStatus {original[0]} is not its status {status}",
            )
        )
    else:
        checked.updates.append((target, new[0]))
