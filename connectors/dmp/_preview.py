"""What a delivery would send to the DMP, as data: the XDS metadata, never the document.

Touches: nothing.

For ``eai dmp preview`` (:mod:`connectors.dmp.cli`): the submission set and document entry
of an ITI-41 publication (:func:`eai.xds.build_metadata`), or the status
change of an ITI-57 deletion, built exactly as a send builds them, as a JSON-ready dict.
No document content; the patient's traits (sourcePatientInfo: PID-5 name, birth date, sex,
birth place) only when ``show_patient``. What a send would refuse (a header lacking a
required element...) is given as ``dead``, the reason a delivery would be dead-lettered.
"""

from __future__ import annotations

from typing import Any

from connectors.dmp._soap import ACTION, UPDATE_ACTION
from connectors.dmp._source import publication_of
from connectors.dmp.config import DmpDestinationConfig
from eai.errors import PermanentDeliveryError
from eai.messages import OutboxItem
from eai.xds import (
    APPROVED,
    DELETED,
    RPLC,
    Code,
    DocumentEntry,
    SubmissionSet,
    build_metadata,
    build_submission_set,
    document_entry_uuid,
)

__all__ = ["HIDDEN", "preview"]

HIDDEN = "(patient traits hidden: --raw shows them, and records that you read them)"


def _code(code: Code) -> dict[str, str]:
    return {"code": code.code, "codingScheme": code.system, "displayName": code.display}


def _submission_set(submission: SubmissionSet) -> dict[str, Any]:
    return {
        "uniqueId": f"{submission.unique_id} (a new one at each attempt)",
        "sourceId": submission.source_id,
        "submissionTime": f"{submission.submission_time} (the time of the attempt)",
        "patientId": submission.patient_id,
        "authorPerson": submission.author_person,
        "authorInstitution": submission.author_institution,
        "contentTypeCode": _code(submission.content_type),
    }


def _entry(entry: DocumentEntry, show_patient: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "entryUUID": entry.entry_uuid,
        "uniqueId": entry.unique_id,
        "mimeType": entry.mime_type,
        "title": entry.title,
        "classCode": _code(entry.class_code),
        "typeCode": _code(entry.type_code),
        "formatCode": _code(entry.format_code),
        "confidentialityCode": [_code(c) for c in entry.confidentiality],
        "healthcareFacilityTypeCode": _code(entry.facility_type),
        "practiceSettingCode": _code(entry.practice_setting),
        "eventCodeList": [],
        "creationTime": entry.creation_time,
        "serviceStartTime": entry.service_start,
        "serviceStopTime": entry.service_stop,
        "languageCode": entry.language,
        "authorPerson": entry.author_person,
        "authorInstitution": entry.author_institution,
        "authorSpecialty": entry.author_specialty,
        "legalAuthenticator": entry.legal_authenticator,
        "patientId": entry.patient_id,
        "sourcePatientId": entry.source_patient_id,
        "sourcePatientInfo": list(entry.source_patient_info) if show_patient else HIDDEN,
        "hash": entry.hash,
        "size": entry.size,
    }
    if entry.replaces:
        data["association"] = {"type": RPLC, "targetObject": entry.replaces}
    return data


def preview(
    config: DmpDestinationConfig, item: OutboxItem, *, show_patient: bool = False
) -> dict[str, Any]:
    """What sending ``item`` to the destination ``config`` would publish (or delete)."""
    deletion = item.facts.flags.get("document_action") == "delete"
    data: dict[str, Any] = {
        "destination": config.name,
        "transaction": (
            f"ITI-57 Update Document Set ({UPDATE_ACTION}): deletion"
            if deletion
            else f"ITI-41 Provide and Register Document Set-b ({ACTION})"
        ),
        "endpoint": (config.registry_url or "(no registry_url)") if deletion else config.url,
    }
    try:
        publication = publication_of(item)
        settings = config.metadata_settings()
        if deletion:
            if not config.registry_url:
                raise PermanentDeliveryError(
                    "a deletion needs the DMP registry's ITI-57 endpoint: set registry_url"
                )
            unique_id, target = document_entry_uuid(publication)
            data["submissionSet"] = _submission_set(build_submission_set(publication, settings))
            data["statusChange"] = {
                "uniqueId": unique_id,
                "targetObject": target,
                "OriginalStatus": APPROVED,
                "NewStatus": DELETED,
            }
            return data
        submission, entry = build_metadata(publication, settings)
    except PermanentDeliveryError as exc:
        data["dead"] = str(exc)
        return data
    data["submissionSet"] = _submission_set(submission)
    data["documentEntry"] = _entry(entry, show_patient)
    data["signature"] = (
        "plus the submission set's signature document (IHE DSG, XAdES), signed at send time"
    )
    return data
