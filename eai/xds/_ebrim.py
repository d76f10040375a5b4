"""Render a submission set and its document entry as ebRIM: ITI-41's request, XDM's METADATA.XML.

Touches: nothing.

:func:`build_request` gives the ITI-41 ``ProvideAndRegisterDocumentSetRequest`` (DMP);
:func:`build_submit_objects` the ``lcm:SubmitObjectsRequest`` alone, each document entry
with its ``URI`` slot, the root of an XDM ``METADATA.XML`` (IHE ITI TF-3 §4.3: the path of
the document file relative to the METADATA.XML's directory).

ebRIM 3.0 / ebRS 3.0 (``urn:oasis:names:tc:ebxml-regrep:xsd:*:3.0``) inside the XDS.b
``ProvideAndRegisterDocumentSetRequest`` (``urn:ihe:iti:xds-b:2007``), laid out as IHE
ITI TF-3 §4.2 and the ANS sample (``ansforge/DRIM-M_DATA``, ``informatif/XDS/
publication.xml``): a RegistryPackage (submission set: submissionTime slot, author and
contentTypeCode classifications, the submission-set classification node, patientId,
sourceId and uniqueId external identifiers), an ExtrinsicObject per document (its id an
entryUUID eai derives from the uniqueId; slots,
coded classifications each with its codingScheme slot and display name, patientId and
uniqueId), a HasMember association (``SubmissionSetStatus`` ``Original``), for a
replacement an RPLC association to the replaced entry's entryUUID, and the
``Document`` element holding the bytes (base64 here: the MTOM layer moves them into
their own part behind an ``xop:Include``). Built with lxml, one element at a time.
"""

from __future__ import annotations

import base64

from lxml import etree

from eai.xds._code import Code
from eai.xds._codes import SCHEME
from eai.xds._metadata import DocumentEntry, SubmissionSet

__all__ = [
    "APPROVED",
    "DELETED",
    "RPLC",
    "UPDATE_AVAILABILITY_STATUS",
    "SIGNS",
    "LCM",
    "RIM",
    "SUBMISSION_SET_ID",
    "XDSB",
    "build_request",
    "build_status_update",
    "build_submit_objects",
]

RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
XDSB = "urn:ihe:iti:xds-b:2007"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_NSMAP = {"rim": RIM, "lcm": LCM, "xdsb": XDSB}
SUBMISSION_SET_ID = "SubmissionSet01"
RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
SIGNS = "urn:ihe:iti:2007:AssociationType:signs"
UPDATE_AVAILABILITY_STATUS = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"
APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
DELETED = "urn:asip:ci-sis:2010:StatusType:Deleted"
"""A DMP document's status once deleted ("Version dépubliée", ANS terminology TRE_R270
AvailabilityStatus, OID 1.2.250.1.213.1.1.4.342)."""


def _rim(tag: str) -> str:
    return f"{{{RIM}}}{tag}"


_SLOT, _VALUE_LIST, _VALUE = _rim("Slot"), _rim("ValueList"), _rim("Value")
_LOCALIZED_STRING = _rim("LocalizedString")
_CLASSIFICATION = _rim("Classification")


class _Builder:
    def __init__(self) -> None:
        self._count = 0

    def next_id(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}{self._count:02d}"

    @staticmethod
    def slot(parent: etree._Element, name: str, *values: str) -> None:
        value_list = etree.SubElement(etree.SubElement(parent, _SLOT, name=name), _VALUE_LIST)
        for value in values:
            etree.SubElement(value_list, _VALUE).text = value

    @staticmethod
    def name(parent: etree._Element, text: str, tag: str = "Name") -> None:
        element = etree.SubElement(parent, _rim(tag))
        localized = etree.SubElement(element, _LOCALIZED_STRING, value=text)
        localized.set("charset", "UTF-8")
        localized.set(_XML_LANG, "fr-FR")

    def coded(self, parent: etree._Element, scheme: str, code: Code) -> None:
        element = etree.SubElement(
            parent,
            _CLASSIFICATION,
            classificationScheme=SCHEME[scheme],
            classifiedObject=str(parent.get("id")),
            id=self.next_id("cl"),
            nodeRepresentation=code.code,
        )
        self.slot(element, "codingScheme", code.system)
        self.name(element, code.display or code.code)

    def author(
        self, parent: etree._Element, scheme: str, person: str, institution: str, specialty: str
    ) -> None:
        element = etree.SubElement(
            parent,
            _CLASSIFICATION,
            classificationScheme=SCHEME[scheme],
            classifiedObject=str(parent.get("id")),
            id=self.next_id("cl"),
            nodeRepresentation="",
        )
        self.slot(element, "authorPerson", person)
        self.slot(element, "authorInstitution", institution)
        if specialty:
            self.slot(element, "authorSpecialty", specialty)

    def external_id(self, parent: etree._Element, scheme: str, value: str, label: str) -> None:
        element = etree.SubElement(
            parent,
            _rim("ExternalIdentifier"),
            id=self.next_id("ei"),
            identificationScheme=SCHEME[scheme],
            registryObject=str(parent.get("id")),
            value=value,
        )
        self.name(element, label)


def _document_entry(
    b: _Builder, parent: etree._Element, entry: DocumentEntry, uri: str = ""
) -> None:
    eo = etree.SubElement(
        parent,
        _rim("ExtrinsicObject"),
        id=entry.entry_uuid,
        mimeType=entry.mime_type,
        objectType=SCHEME["de.object"],
    )
    b.slot(eo, "creationTime", entry.creation_time)
    b.slot(eo, "hash", entry.hash)
    b.slot(eo, "languageCode", entry.language)
    b.slot(eo, "legalAuthenticator", entry.legal_authenticator)
    b.slot(eo, "serviceStartTime", entry.service_start)
    if entry.service_stop:
        b.slot(eo, "serviceStopTime", entry.service_stop)
    b.slot(eo, "size", str(entry.size))
    b.slot(eo, "sourcePatientId", entry.source_patient_id)
    if entry.source_patient_info:
        b.slot(eo, "sourcePatientInfo", *entry.source_patient_info)
    if uri:
        # ebRIM puts every Slot before Name (the ANS XDM sample puts URI last: not valid)
        b.slot(eo, "URI", uri)
    b.name(eo, entry.title)
    b.author(eo, "de.author", entry.author_person, entry.author_institution, entry.author_specialty)
    b.coded(eo, "de.classCode", entry.class_code)
    for code in entry.confidentiality:
        b.coded(eo, "de.confidentialityCode", code)
    b.coded(eo, "de.formatCode", entry.format_code)
    b.coded(eo, "de.healthcareFacilityTypeCode", entry.facility_type)
    b.coded(eo, "de.practiceSettingCode", entry.practice_setting)
    b.coded(eo, "de.typeCode", entry.type_code)
    b.external_id(eo, "de.patientId", entry.patient_id, "XDSDocumentEntry.patientId")
    b.external_id(eo, "de.uniqueId", entry.unique_id, "XDSDocumentEntry.uniqueId")


def _submission_set(b: _Builder, parent: etree._Element, submission: SubmissionSet) -> None:
    rp = etree.SubElement(parent, _rim("RegistryPackage"), id=SUBMISSION_SET_ID)
    b.slot(rp, "submissionTime", submission.submission_time)
    b.author(rp, "ss.author", submission.author_person, submission.author_institution, "")
    b.coded(rp, "ss.contentTypeCode", submission.content_type)
    etree.SubElement(
        rp,
        _rim("Classification"),
        classificationNode=SCHEME["ss.object"],
        classifiedObject=SUBMISSION_SET_ID,
        id=b.next_id("cl"),
    )
    b.external_id(rp, "ss.patientId", submission.patient_id, "XDSSubmissionSet.patientId")
    b.external_id(rp, "ss.sourceId", submission.source_id, "XDSSubmissionSet.sourceId")
    b.external_id(rp, "ss.uniqueId", submission.unique_id, "XDSSubmissionSet.uniqueId")


def build_request(
    submission: SubmissionSet,
    entry: DocumentEntry,
    document: bytes,
    signature: tuple[DocumentEntry, bytes] | None = None,
) -> etree._Element:
    """The ``xdsb:ProvideAndRegisterDocumentSetRequest`` element publishing ``document``,
    and the submission set's ``signature`` document (its entry and bytes) when given: a
    HasMember association and a ``signs`` association from it to the submission set."""
    request = etree.Element(f"{{{XDSB}}}ProvideAndRegisterDocumentSetRequest", nsmap=_NSMAP)
    submit = etree.SubElement(request, f"{{{LCM}}}SubmitObjectsRequest")
    _registry_objects(submit, submission, entry, signature)
    doc = etree.SubElement(request, f"{{{XDSB}}}Document", id=entry.entry_uuid)
    doc.text = base64.b64encode(document).decode("ascii")
    if signature is not None:
        signed = etree.SubElement(request, f"{{{XDSB}}}Document", id=signature[0].entry_uuid)
        signed.text = base64.b64encode(signature[1]).decode("ascii")
    return request


def build_submit_objects(
    submission: SubmissionSet, entry: DocumentEntry, uri: str
) -> etree._Element:
    """The ``lcm:SubmitObjectsRequest`` of an XDM ``METADATA.XML``: ``entry``'s document is
    the file ``uri`` (relative to the METADATA.XML's directory)."""
    submit = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap={"lcm": LCM, "rim": RIM})
    _registry_objects(submit, submission, entry, None, uri)
    return submit


def _registry_objects(
    submit: etree._Element,
    submission: SubmissionSet,
    entry: DocumentEntry,
    signature: tuple[DocumentEntry, bytes] | None,
    uri: str = "",
) -> None:
    b = _Builder()
    objects = etree.SubElement(submit, _rim("RegistryObjectList"))
    _submission_set(b, objects, submission)
    _document_entry(b, objects, entry, uri)
    association = etree.SubElement(
        objects,
        _rim("Association"),
        associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember",
        id=b.next_id("as"),
        sourceObject=SUBMISSION_SET_ID,
        targetObject=entry.entry_uuid,
    )
    b.slot(association, "SubmissionSetStatus", "Original")
    if signature is not None:
        signature_entry, _ = signature
        _document_entry(b, objects, signature_entry)
        member = etree.SubElement(
            objects,
            _rim("Association"),
            associationType="urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember",
            id=b.next_id("as"),
            sourceObject=SUBMISSION_SET_ID,
            targetObject=signature_entry.entry_uuid,
        )
        b.slot(member, "SubmissionSetStatus", "Original")
        etree.SubElement(
            objects,
            _rim("Association"),
            associationType=SIGNS,
            id=b.next_id("as"),
            sourceObject=signature_entry.entry_uuid,
            targetObject=SUBMISSION_SET_ID,
        )
    if entry.replaces:
        # ITI TF-3 §4.2.2: the new entry (source) replaces the registered one (target,
        # by its entryUUID); the replaced entry becomes Deprecated.
        etree.SubElement(
            objects,
            _rim("Association"),
            associationType=RPLC,
            id=b.next_id("as"),
            sourceObject=entry.entry_uuid,
            targetObject=entry.replaces,
        )


def build_status_update(
    submission: SubmissionSet, target: str, original: str = APPROVED, new: str = DELETED
) -> etree._Element:
    """The ``lcm:SubmitObjectsRequest`` of an ITI-57 Update Document Set that changes the
    availabilityStatus of the registered entry ``target`` (its entryUUID) from ``original``
    to ``new`` (IHE XDS Metadata Update: a submission set and an ``UpdateAvailabilityStatus``
    association from it to the entry, slots ``OriginalStatus`` and ``NewStatus``; no
    document entry, no document). The DMP deletes a document this way (TD3.3c)."""
    b = _Builder()
    submit = etree.Element(f"{{{LCM}}}SubmitObjectsRequest", nsmap=_NSMAP)
    objects = etree.SubElement(submit, _rim("RegistryObjectList"))
    _submission_set(b, objects, submission)
    association = etree.SubElement(
        objects,
        _rim("Association"),
        associationType=UPDATE_AVAILABILITY_STATUS,
        id=b.next_id("as"),
        sourceObject=SUBMISSION_SET_ID,
        targetObject=target,
    )
    b.slot(association, "OriginalStatus", original)
    b.slot(association, "NewStatus", new)
    return submit
