"""Read what XDS metadata needs from a CDA R2 header, naming what is missing.

Touches: nothing.

The CDA side of the CI-SIS mapping (IG "Transmission de documents CDA en HL7 v2",
``mapping.md``, "Mapping XDS": the document entry's creationTime is
``effectiveTime@value``, typeCode ``code@code``, title ``title``, uniqueId
``id@root``, legalAuthenticator ``legalAuthenticator/assignedEntity``,
healthcareFacilityTypeCode ``componentOf/encompassingEncounter/location/
healthCareFacility/code``, practiceSettingCode ``documentationOf/serviceEvent/performer/
assignedEntity/representedOrganization/standardIndustryClassCode``, serviceStart/StopTime
``documentationOf/serviceEvent/effectiveTime/low|high``). A required element that is
absent raises :class:`eai.errors.PermanentDeliveryError` naming it: retrying cannot add
it. The values read are patient data: never logged.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from lxml import etree

from eai.cda import CLINICAL_DOCUMENT, NAMESPACES, find_clinical_document
from eai.errors import InputError, PermanentDeliveryError
from eai.xds._code import Code
from eai.xml import check_xml, parse_xml

__all__ = ["Code", "DocumentHeader", "InstanceId", "Person", "read_header", "xds_time"]

_NS = NAMESPACES
_TIME = re.compile(r"^(\d{4,14})(?:\.\d+)?(?:([+-])(\d{2})(\d{2}))?$")


@dataclass(frozen=True, slots=True)
class InstanceId:
    """An HL7 v3 II: ``root`` (an OID) and an optional ``extension``."""

    root: str
    extension: str = ""


@dataclass(frozen=True, slots=True, repr=False)
class Person:
    """An author or legal authenticator (patient data: no repr)."""

    id: InstanceId
    family: str = ""
    given: str = ""
    prefix: str = ""
    specialty: Code | None = None
    organisation: InstanceId | None = None
    organisation_name: str = ""


@dataclass(frozen=True, slots=True, repr=False)
class DocumentHeader:
    """The header values the metadata is made of (patient data: no repr)."""

    id: InstanceId
    type: Code
    title: str
    creation_time: str
    """``effectiveTime`` as an XDS DTM in UTC (``YYYYMMDDHHMMSS`` or shorter)."""
    confidentiality: Code
    language: str
    set_id: InstanceId | None
    version: str
    template_ids: tuple[str, ...]
    structured: bool
    """False for a level-1 document (``nonXMLBody``)."""
    author: Person
    legal_authenticator: Person
    facility_type: Code
    practice_setting: Code
    service_start: str
    service_stop: str
    patient_ids: tuple[InstanceId, ...]
    patient_family: str
    patient_given: str
    patient_gender: str
    patient_birth: str
    patient_birthplace_code: str
    """The INSEE code of the birthplace (``birthplace/place/addr/county``)."""
    body_media_type: str = ""
    """A level-1 document's ``nonXMLBody/text/@mediaType`` (``application/pdf``...)."""
    replaces: InstanceId | None = None
    """``relatedDocument[@typeCode='RPLC']/parentDocument/id``: the document this version
    replaces (CDA R2 §4.2.3.1), None for a first version."""


_compiled = threading.local()


def _xpath(path: str) -> etree.XPath:
    """``path`` compiled once per thread (an lxml XPath evaluator is not shared between
    threads): the header's paths are a fixed few, read for every document, and compiling
    them each time was a tenth of a publication's CPU."""
    cache: dict[str, etree.XPath] | None = getattr(_compiled, "cache", None)
    if cache is None:
        cache = _compiled.cache = {}
    found = cache.get(path)
    if found is None:
        found = cache[path] = etree.XPath(path, namespaces=_NS)
    return found


class _Reader:
    def __init__(self, document: etree._Element) -> None:
        self.doc = document

    def first(self, path: str) -> etree._Element | None:
        found = _xpath(path)(self.doc)
        if isinstance(found, list) and found and isinstance(found[0], etree._Element):
            return found[0]
        return None

    def text(self, path: str) -> str:
        found = _xpath(f"string({path})")(self.doc)
        return str(found).strip()

    def required(self, path: str, what: str) -> str:
        value = self.text(path)
        if not value:
            raise PermanentDeliveryError(
                f"the document header lacks {_readable(path)} ({what}), required by the XDS "
                "metadata"
            )
        return value

    def code(self, path: str, what: str) -> Code:
        code = self.required(f"{path}/@code", what)
        system = self.required(f"{path}/@codeSystem", what)
        return Code(code, system, self.text(f"{path}/@displayName"))

    def ii(self, path: str, what: str) -> InstanceId:
        return InstanceId(self.required(f"{path}/@root", what), self.text(f"{path}/@extension"))

    def person(self, path: str, what: str) -> Person:
        specialty = None
        if self.text(f"{path}/hl7:code/@code"):
            specialty = self.code(f"{path}/hl7:code", f"{what} specialty")
        org_root = self.text(f"{path}/hl7:representedOrganization/hl7:id/@root")
        organisation = None
        if org_root:
            organisation = InstanceId(
                org_root, self.text(f"{path}/hl7:representedOrganization/hl7:id/@extension")
            )
        name = f"{path}/hl7:assignedPerson/hl7:name"
        return Person(
            id=self.ii(f"{path}/hl7:id", what),
            family=self.text(f"{name}/hl7:family"),
            given=self.text(f"{name}/hl7:given"),
            prefix=self.text(f"{name}/hl7:prefix"),
            specialty=specialty,
            organisation=organisation,
            organisation_name=self.text(f"{path}/hl7:representedOrganization/hl7:name"),
        )


def _readable(path: str) -> str:
    path = path.replace("hl7:", "")
    return "ClinicalDocument" + path[1:] if path.startswith(".") else path


def xds_time(value: str) -> str:
    """An HL7 v3 TS (``20210104160527+0100``) as an XDS DTM in UTC (``20210104150527``).

    A value without a time zone is kept as it is (truncated to seconds); one that is not a
    TS raises ValueError."""
    match = _TIME.match(value.strip())
    if not match:
        raise ValueError("not an HL7 TS")
    digits, sign, hours, minutes = match.groups()
    if sign is None or len(digits) < 12:
        return digits[:14]
    fmt = "%Y%m%d%H%M%S"[: {12: 10, 14: 12}[len(digits)]]
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    zone = timezone(-offset if sign == "-" else offset)
    # the fields by position (what strptime with fmt reads from these fixed-width digits,
    # without its locale look-ups): an impossible date raises ValueError as there
    second = int(digits[12:14]) if len(digits) == 14 else 0
    local = datetime(
        int(digits[0:4]),
        int(digits[4:6]),
        int(digits[6:8]),
        int(digits[8:10]),
        int(digits[10:12]),
        second,
        tzinfo=zone,
    )
    return local.astimezone(UTC).strftime(fmt)


def _time(reader: _Reader, path: str, what: str, *, required: bool = True) -> str:
    raw = reader.required(path, what) if required else reader.text(path)
    if not raw:
        return ""
    try:
        return xds_time(raw)
    except ValueError:
        raise PermanentDeliveryError(
            f"the document header's {_readable(path)} ({what}) is not an HL7 date and time"
        ) from None


_HL7 = "{urn:hl7-org:v3}"
_BODY_START = b"<structuredBody"
_HEAD_END = b"<structuredBody/></component></ClinicalDocument>"


def _parse_head(document_bytes: bytes) -> etree._Element:
    """The CDA's root element, the tree built up to its structured body when that can be
    done exactly; the whole document checked either way.

    A CR-BIO's body is nine tenths of its bytes and of the tree, and the header is all
    that is read (CDA R2 puts the body last). The bytes up to the first
    ``<structuredBody`` (the usual unprefixed form), closed by ``<structuredBody/>
    </component></ClinicalDocument>``, are parsed with the hardened parser: that parses
    only if the cut fell right inside the root ``ClinicalDocument``'s ``component`` (not
    in a comment, a CDATA section or another element), and then the header is the
    document's, byte for byte. The whole document is then checked without building its
    tree (:func:`eai.xml.check_xml`: refused exactly when :func:`eai.xml.parse_xml` would
    refuse it, with its reason): 0.7 ms instead of 1.3 for a CR-BIO. Anything else (another
    form, a prefix, UTF-16, a header that does not parse) is parsed whole, as before."""
    cut = document_bytes.find(_BODY_START)
    if cut > 0 and document_bytes[cut + len(_BODY_START) : cut + len(_BODY_START) + 1] in (
        b" ",
        b">",
        b"/",
        b"\t",
        b"\r",
        b"\n",
    ):
        try:
            root = parse_xml(document_bytes[:cut] + _HEAD_END)
        except InputError:
            pass
        else:
            # the closing tags parsed: the cut was inside the root's last child
            if root.tag == CLINICAL_DOCUMENT and root[-1].tag == f"{_HL7}component":
                check_xml(document_bytes)  # the whole refused as parse_xml would
                return root
    return parse_xml(document_bytes)


def read_header(document_bytes: bytes) -> DocumentHeader:
    """Read the header of the CDA ``document_bytes`` (hardened parse, see :mod:`eai.xml`;
    up to the structured body, see :func:`_parse_head`).

    Raises PermanentDeliveryError when the bytes are no CDA or a required element is
    missing (the message names the element, never a value)."""
    try:
        root = _parse_head(document_bytes)
        document = find_clinical_document(root)
    except InputError as exc:
        raise PermanentDeliveryError(f"the document is not a readable CDA: {exc}") from exc
    r = _Reader(document)
    cd = "."
    encounter = f"{cd}/hl7:componentOf/hl7:encompassingEncounter"
    event = f"{cd}/hl7:documentationOf/hl7:serviceEvent"
    set_root = r.text(f"{cd}/hl7:setId/@root")
    patient = f"{cd}/hl7:recordTarget/hl7:patientRole"
    patient_ids = tuple(
        InstanceId(str(e.get("root", "")), str(e.get("extension", "")))
        for e in _xpath(f"{patient}/hl7:id[@root]")(document)
        if isinstance(e, etree._Element)
    )
    if not patient_ids:
        raise PermanentDeliveryError(
            f"the document header lacks {_readable(patient)}/id (patient identifier), required "
            "by the XDS metadata"
        )
    parent = f"{cd}/hl7:relatedDocument[@typeCode='RPLC']/hl7:parentDocument/hl7:id"
    parent_root = r.text(f"{parent}/@root")
    name = f"{patient}/hl7:patient/hl7:name"
    family = r.text(f"{name}/hl7:family[@qualifier='BR']") or r.text(f"{name}/hl7:family")
    return DocumentHeader(
        id=r.ii(f"{cd}/hl7:id", "uniqueId"),
        type=r.code(f"{cd}/hl7:code", "typeCode"),
        title=r.required(f"{cd}/hl7:title", "title"),
        creation_time=_time(r, f"{cd}/hl7:effectiveTime/@value", "creationTime"),
        confidentiality=r.code(f"{cd}/hl7:confidentialityCode", "confidentialityCode"),
        language=r.required(f"{cd}/hl7:languageCode/@code", "languageCode"),
        set_id=InstanceId(set_root, r.text(f"{cd}/hl7:setId/@extension")) if set_root else None,
        version=r.text(f"{cd}/hl7:versionNumber/@value"),
        template_ids=tuple(str(v) for v in _xpath(f"{cd}/hl7:templateId/@root")(document)),
        structured=r.first(f"{cd}/hl7:component/hl7:nonXMLBody") is None,
        author=r.person(f"{cd}/hl7:author/hl7:assignedAuthor", "authorPerson"),
        legal_authenticator=r.person(
            f"{cd}/hl7:legalAuthenticator/hl7:assignedEntity", "legalAuthenticator"
        ),
        facility_type=r.code(
            f"{encounter}/hl7:location/hl7:healthCareFacility/hl7:code",
            "healthcareFacilityTypeCode",
        ),
        practice_setting=r.code(
            f"{event}/hl7:performer/hl7:assignedEntity/hl7:representedOrganization"
            "/hl7:standardIndustryClassCode",
            "practiceSettingCode",
        ),
        service_start=_time(r, f"{event}/hl7:effectiveTime/hl7:low/@value", "serviceStartTime"),
        service_stop=_time(
            r, f"{event}/hl7:effectiveTime/hl7:high/@value", "serviceStopTime", required=False
        ),
        patient_ids=patient_ids,
        patient_family=family,
        patient_given=r.text(f"{name}/hl7:given"),
        patient_gender=r.text(f"{patient}/hl7:patient/hl7:administrativeGenderCode/@code"),
        patient_birth=r.text(f"{patient}/hl7:patient/hl7:birthTime/@value"),
        patient_birthplace_code=r.text(
            f"{patient}/hl7:patient/hl7:birthplace/hl7:place/hl7:addr/hl7:county"
        ),
        body_media_type=r.text(f"{cd}/hl7:component/hl7:nonXMLBody/hl7:text/@mediaType"),
        replaces=InstanceId(parent_root, r.text(f"{parent}/@extension")) if parent_root else None,
    )
