"""The XDS.b metadata values of one submission (submission set and document entry).

Touches: nothing.

From a :class:`~eai.xds.Publication` per the IG's ``mapping.md`` ("Mapping
XDS", "Lot de soumission" and "Fiche") and the CI-SIS rules in ``docs-fr.md``: patientId
``<INS>^^^&<OID>&ISO^NH``; author and legalAuthenticator as XCN with the RPPS authority
``&1.2.250.1.71.4.2.1&ISO`` and type ``IDNPS``; institution as XON ``&1.2.250.1.71.4.2.2&ISO``
``IDNST``; hash SHA-1 (hex) and size of the exact bytes sent. Unique ids are OIDs: the
DMP refuses ``OID^extension`` (docs-fr.md), so the document's uniqueId is the CDA
``id@root`` (the IG: "CDA : id@root"), or ``root.extension`` when the extension is a
number (still an OID); any other extension cannot be published and is refused. A
submission set's uniqueId is a UUID-derived OID (``2.25.<n>``, ITU-T X.667), as the ANS
sample does for its signature document.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from eai.errors import PermanentDeliveryError
from eai.hl7 import escape
from eai.xds._code import Code
from eai.xds._codes import (
    CONFIDENTIALITY_FLAGS,
    CONTENT_TYPE_BY_PATIENT_CLASS,
    FORMAT_BY_MEDIA,
    INS_OIDS,
    RPPS_OID,
)
from eai.xds._header import InstanceId, Person
from eai.xds._settings import MetadataSettings
from eai.xds._source import Publication

__all__ = [
    "DocumentEntry",
    "build_submission_set",
    "document_entry_uuid",
    "signature_entry",
    "MetadataSettings",
    "SubmissionSet",
    "build_metadata",
    "entry_uuid",
    "xcn",
    "xon",
]

_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")
_NUMBER = re.compile(r"^(0|[1-9]\d*)$")


@dataclass(frozen=True, slots=True, repr=False)
class SubmissionSet:
    unique_id: str
    source_id: str
    submission_time: str
    patient_id: str
    author_person: str
    author_institution: str
    content_type: Code


@dataclass(frozen=True, slots=True, repr=False)
class DocumentEntry:
    entry_uuid: str
    """``urn:uuid:`` + UUID v5 of the uniqueId in the OID namespace (RFC 4122): the
    registry keeps an entryUUID the source gives, so a later replacement can name this
    entry without querying the registry."""
    replaces: str
    """The entryUUID of the document this one replaces (an RPLC association), or ""."""
    unique_id: str
    mime_type: str
    title: str
    class_code: Code
    type_code: Code
    format_code: Code
    confidentiality: tuple[Code, ...]
    facility_type: Code
    practice_setting: Code
    creation_time: str
    service_start: str
    service_stop: str
    language: str
    legal_authenticator: str
    author_person: str
    author_institution: str
    author_specialty: str
    patient_id: str
    source_patient_id: str
    source_patient_info: tuple[str, ...]
    hash: str
    size: int


def _esc(value: str) -> str:
    return escape(value, "^~\\&", "|")


def xcn(person_id: InstanceId, family: str = "", given: str = "") -> str:
    """An HL7 v2 XCN for a professional (IDNPS under the RPPS authority, else EI)."""
    kind = "D^^^IDNPS" if person_id.root == RPPS_OID else "U^^^EI"
    return (
        f"{_esc(person_id.extension)}^{_esc(family)}^{_esc(given)}^^^^^^"
        f"&{person_id.root}&ISO^{kind}"
    )


def xon(name: str, organisation: InstanceId) -> str:
    """An HL7 v2 XON for a structure (IDNST)."""
    return f"{_esc(name)}^^^^^&{organisation.root}&ISO^IDNST^^^{_esc(organisation.extension)}"


def _person_xcn(person: Person) -> str:
    return xcn(person.id, person.family, person.given)


def _document_unique_id(document_id: InstanceId) -> str:
    if not _OID.match(document_id.root):
        raise PermanentDeliveryError(
            "the document's ClinicalDocument/id@root (uniqueId) is not an OID"
        )
    if not document_id.extension:
        return document_id.root
    if _NUMBER.match(document_id.extension):
        return f"{document_id.root}.{document_id.extension}"
    raise PermanentDeliveryError(
        "the document's ClinicalDocument/id has a non-numeric extension: the DMP takes an OID "
        "uniqueId, never OID^extension"
    )


def _author_institution(person: Person) -> str:
    if person.organisation is None:
        raise PermanentDeliveryError(
            "the document header lacks ClinicalDocument/author/assignedAuthor/"
            "representedOrganization/id (authorInstitution), required by the XDS metadata"
        )
    return xon(person.organisation_name, person.organisation)


def _submission_author(publication: Publication) -> str:
    sender = publication.sender
    if (
        sender is not None
        and sender.kind == "professional"
        and sender.identifier
        and sender.identifier_system == RPPS_OID
    ):
        return xcn(InstanceId(RPPS_OID, sender.identifier))
    return _person_xcn(publication.header.author)


def _source_patient_id(publication: Publication) -> str:
    for pid in publication.header.patient_ids:
        if pid.root not in INS_OIDS and pid.extension and _OID.match(pid.root):
            return f"{_esc(pid.extension)}^^^&{pid.root}&ISO^PI"
    if not publication.ins:
        raise PermanentDeliveryError(
            "no patient identifier for the metadata: no qualified INS and no local "
            "identifier (ClinicalDocument/recordTarget/patientRole/id) in the document"
        )
    return f"{publication.ins}^^^&{publication.ins_oid}&ISO^NH"


def _patient_id(publication: Publication) -> str:
    """The qualified INS (``NH``); without one (an MSSanté mail to professionals only),
    the document's local identifier (``PI``), as the XDM profile allows."""
    if publication.ins:
        return f"{publication.ins}^^^&{publication.ins_oid}&ISO^NH"
    return _source_patient_id(publication)


def _content_type(publication: Publication, settings: MetadataSettings) -> Code:
    code = CONTENT_TYPE_BY_PATIENT_CLASS.get(publication.patient_class) or settings.content_type
    if code is None:
        raise PermanentDeliveryError(
            "no contentTypeCode: PV1-2 gives no known patient class and the destination sets "
            "no content_type_code"
        )
    return code


def _class_code(publication: Publication, settings: MetadataSettings) -> Code:
    type_code = publication.header.type.code
    code = settings.class_codes.get(type_code)
    if code is None:
        raise PermanentDeliveryError(
            f"no classCode for the document type {type_code} (ClinicalDocument/code): add it "
            "to the destination's class_codes"
        )
    return code


def _format_code(publication: Publication, settings: MetadataSettings) -> Code:
    if not publication.header.structured:
        media_type = publication.header.body_media_type.lower() or "text/plain"  # the ED default
        code = FORMAT_BY_MEDIA.get(media_type)
        if code is None:
            raise PermanentDeliveryError(
                f"no formatCode for a level-1 body of mediaType {media_type} "
                "(ClinicalDocument/component/nonXMLBody/text/@mediaType; ASS_A12)"
            )
        return code
    for template in publication.header.template_ids:
        code = settings.format_codes.get(template)
        if code is not None:
            return code
    raise PermanentDeliveryError(
        "no formatCode for the document's model (ClinicalDocument/templateId): add its "
        "templateId to the destination's format_codes"
    )


def _confidentiality(publication: Publication) -> tuple[Code, ...]:
    codes = [publication.header.confidentiality]
    codes += [code for flag, code in CONFIDENTIALITY_FLAGS if publication.flags.get(flag) == "Y"]
    return tuple(codes)


def entry_uuid(unique_id: str) -> str:
    """The entryUUID eai gives the document entry of ``unique_id``."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, unique_id)}"


def _replaces(publication: Publication) -> str:
    if publication.flags.get("document_action") != "replace":
        return ""
    parent = publication.header.replaces
    if parent is None:
        raise PermanentDeliveryError(
            "a replacement whose document header lacks ClinicalDocument/relatedDocument"
            "[@typeCode='RPLC']/parentDocument/id (the replaced document's uniqueId)"
        )
    return entry_uuid(_document_unique_id(parent))


def build_submission_set(
    publication: Publication,
    settings: MetadataSettings,
    *,
    now: datetime | None = None,
    new_uuid: Callable[[], uuid.UUID] = uuid.uuid4,
) -> SubmissionSet:
    """The submission set of a publication (ITI-41) or of a status update (ITI-57).

    Raises PermanentDeliveryError naming what is missing."""
    if not _OID.match(settings.source_id):
        raise PermanentDeliveryError("the destination's source_id is not an OID")
    when = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%d%H%M%S")
    return SubmissionSet(
        unique_id=f"2.25.{new_uuid().int}",
        source_id=settings.source_id,
        submission_time=when,
        patient_id=_patient_id(publication),
        author_person=_submission_author(publication),
        author_institution=_author_institution(publication.header.author),
        content_type=_content_type(publication, settings),
    )


def document_entry_uuid(publication: Publication) -> tuple[str, str]:
    """(uniqueId, entryUUID) of the document ``publication`` carries: what a deletion names
    (the entry eai published for that document, :func:`entry_uuid`)."""
    unique_id = _document_unique_id(publication.header.id)
    return unique_id, entry_uuid(unique_id)


def build_metadata(
    publication: Publication,
    settings: MetadataSettings,
    *,
    now: datetime | None = None,
    new_uuid: Callable[[], uuid.UUID] = uuid.uuid4,
) -> tuple[SubmissionSet, DocumentEntry]:
    """The submission set and document entry of ``publication``.

    Raises PermanentDeliveryError naming what is missing or cannot be published."""
    header = publication.header
    submission = build_submission_set(publication, settings, now=now, new_uuid=new_uuid)
    patient_id = submission.patient_id
    author = header.author
    specialty = ""
    if author.specialty is not None:
        s = author.specialty
        specialty = f"{_esc(s.code)}^{_esc(s.display)}^{s.system}"
    unique_id = _document_unique_id(header.id)
    entry = DocumentEntry(
        entry_uuid=entry_uuid(unique_id),
        replaces=_replaces(publication),
        unique_id=unique_id,
        mime_type="text/xml",
        title=header.title,
        class_code=_class_code(publication, settings),
        type_code=header.type,
        format_code=_format_code(publication, settings),
        confidentiality=_confidentiality(publication),
        facility_type=header.facility_type,
        practice_setting=header.practice_setting,
        creation_time=header.creation_time,
        service_start=header.service_start,
        service_stop=header.service_stop,
        language=header.language,
        legal_authenticator=_person_xcn(header.legal_authenticator),
        author_person=_person_xcn(author),
        author_institution=_author_institution(author),
        author_specialty=specialty,
        patient_id=patient_id,
        source_patient_id=_source_patient_id(publication),
        source_patient_info=publication.source_patient_info,
        hash=hashlib.sha1(publication.document).hexdigest(),  # noqa: S324 - XDS mandates SHA-1
        size=len(publication.document),
    )
    return submission, entry


def signature_entry(
    entry: DocumentEntry, submission: SubmissionSet, signature: bytes, unique_id: str
) -> DocumentEntry:
    """The document entry of the submission set's signature document (IHE DSG, coded as the
    ANS sample codes it: class ``urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1``, type ``E1762``,
    format ``http://www.w3.org/2000/09/xmldsig#``, language ``art``)."""
    when = submission.submission_time
    return DocumentEntry(
        entry_uuid=entry_uuid(unique_id),
        replaces="",
        unique_id=unique_id,
        mime_type="text/xml",
        title="Source",
        class_code=Code("urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1", "URN", "Digital Signature"),
        type_code=Code("E1762", "ASTM", "Full Document"),
        format_code=Code("http://www.w3.org/2000/09/xmldsig#", "URN", "Default Signature Style"),
        confidentiality=(Code("N", "2.16.840.1.113883.5.25", "Normal"),),
        facility_type=entry.facility_type,
        practice_setting=entry.practice_setting,
        creation_time=when,
        service_start=when,
        service_stop=when,
        language="art",
        legal_authenticator=entry.legal_authenticator,
        author_person=submission.author_person,
        author_institution=submission.author_institution,
        author_specialty="",
        patient_id=entry.patient_id,
        source_patient_id=entry.source_patient_id,
        source_patient_info=(),
        hash=hashlib.sha1(signature).hexdigest(),  # noqa: S324 - XDS mandates SHA-1
        size=len(signature),
    )
