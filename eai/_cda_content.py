"""The ``cda`` content type: reads a CDA R2 header into something routes can test.

Touches: nothing.

A CDA document is parsed with the hardened settings of :mod:`eai.xml`; only
header elements are read (``ClinicalDocument/code``, ``id``, ``custodian``,
``author``, ``recordTarget``), by direct child paths, never by walking the
body. The self-presenting ("autoprésentable", CI-SIS) form, where the
``ClinicalDocument`` sits inside an XSL stylesheet root element, is read from
the first ``{urn:hl7-org:v3}ClinicalDocument`` in document order.

What routes see (``header`` and ``get``):

* ``message_type``: ``CDA^<ClinicalDocument/code/@code>`` (``CDA^11502-2`` for a
  CR-BIO), or ``CDA`` when the document has no code; routes test it with
  ``message_type: [CDA]`` (any document);
* ``sending_facility``: the custodian organisation's id extension (the
  FINESS of the organisation keeping the document), else the first author's
  organisation id extension;
* ``sending_application``: ``author/assignedAuthor/assignedAuthoringDevice/
  softwareName`` when present, else empty;
* ``get(xpath)``: an XPath 1.0 expression evaluated from the
  ``ClinicalDocument`` element, prefixes ``hl7:`` (urn:hl7-org:v3), ``sdtc:``,
  ``lab:`` and ``xsi:``; the first string value, ``''`` when none (and for an
  HL7 v2 path or an expression that does not compile).

The patient (``identity.PatientKey``) comes from
``recordTarget/patientRole/id`` (CI-SIS: the INS with the OID of the NIR,
then local identifiers): ordering key ``extension^root`` of the first id
carrying an extension; identifiers: every extension. The control id is the
document id, ``extension^root`` (``root`` alone when it has no extension).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from lxml import etree

from eai.config import ListenerConfig
from eai.content import ParsedContent, register_content_type
from eai.errors import InputError
from eai.messages import MEDIA_CDA_XML
from eai.xml import parse_xml
from identity import PatientKey

__all__ = [
    "CLINICAL_DOCUMENT",
    "HL7_NS",
    "NAMESPACES",
    "CdaDocument",
    "CdaHeader",
    "find_clinical_document",
    "parse_cda",
    "read_cda",
]

HL7_NS = "urn:hl7-org:v3"
CLINICAL_DOCUMENT = f"{{{HL7_NS}}}ClinicalDocument"
NAMESPACES = {
    "hl7": HL7_NS,
    "sdtc": "urn:hl7-org:sdtc",
    "lab": "urn:oid:1.3.6.1.4.1.19376.1.3.2",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}

_HL7V2_PATH = re.compile(r"^[A-Z0-9]{3}(\[\d+\])?-\d+")


def _q(path: str) -> str:
    """``a/b`` -> ``{urn:hl7-org:v3}a/{urn:hl7-org:v3}b`` (ElementPath, no XPath engine)."""
    return "/".join(f"{{{HL7_NS}}}{step}" for step in path.split("/"))


_CODE = _q("code")
_ID = _q("id")
_CUSTODIAN_ID = _q("custodian/assignedCustodian/representedCustodianOrganization/id")
_AUTHOR_ORG_ID = _q("author/assignedAuthor/representedOrganization/id")
_SOFTWARE = _q("author/assignedAuthor/assignedAuthoringDevice/softwareName")
_PATIENT_ID = _q("recordTarget/patientRole/id")


@dataclass(frozen=True, slots=True)
class CdaHeader:
    """The header values routes and the journal use (:class:`eai.routing.RoutableHeader`)."""

    message_type: str
    sending_application: str
    sending_facility: str
    document_code: str
    control_id: str


class CdaDocument:
    """A parsed CDA as routes see it: ``header`` and ``get(xpath)``."""

    __slots__ = ("element", "header")

    def __init__(self, element: etree._Element, header: CdaHeader) -> None:
        self.element = element
        self.header = header

    def get(self, path: str) -> str:
        """The first string value of XPath ``path`` from ``ClinicalDocument``; '' if none."""
        values = self._evaluate(path)
        return values[0] if values else ""

    def get_all(self, path: str) -> list[str]:
        """Every string value of XPath ``path`` (a node-set); [] if none."""
        return self._evaluate(path)

    def _evaluate(self, path: str) -> list[str]:
        if not path.strip() or _HL7V2_PATH.match(path):
            return []
        try:
            result = self.element.xpath(path, namespaces=NAMESPACES)
        except (etree.XPathError, ValueError):
            return []
        if isinstance(result, list):
            return [v for v in (_string_value(item) for item in result) if v]
        value = _string_value(result)
        return [value] if value else []

    def __repr__(self) -> str:  # no patient data
        return f"CdaDocument(type={self.header.message_type!r})"


def _string_value(item: object) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, float):
        if math.isnan(item) or math.isinf(item):
            return ""
        return str(int(item)) if item.is_integer() else repr(item)
    if isinstance(item, str):
        return str(item)
    if isinstance(item, etree._Element):
        return "".join(item.itertext()).strip()
    return ""


def find_clinical_document(root: etree._Element) -> etree._Element:
    """``root`` when it is a ``ClinicalDocument``, else the first one inside it
    (the self-presenting form); :class:`InputError` when there is none."""
    if root.tag == CLINICAL_DOCUMENT:
        return root
    for element in root.iter(CLINICAL_DOCUMENT):
        return element
    raise InputError("not a CDA document: no {urn:hl7-org:v3}ClinicalDocument element")


def _instance_id(element: etree._Element | None) -> str:
    if element is None:
        return ""
    root = (element.get("root") or "").strip()
    extension = (element.get("extension") or "").strip()
    if extension:
        return f"{extension}^{root}" if root else extension
    return root


def _first_extension(document: etree._Element, path: str) -> str:
    for element in document.iterfind(path):
        extension = (element.get("extension") or "").strip()
        if extension:
            return extension
    return ""


def read_cda(document: etree._Element) -> CdaDocument:
    """The routable view of a ``ClinicalDocument`` element (header only)."""
    code_element = document.find(_CODE)
    code = (code_element.get("code") or "").strip() if code_element is not None else ""
    software = document.findtext(_SOFTWARE) or ""
    header = CdaHeader(
        message_type=f"CDA^{code}" if code else "CDA",
        sending_application=software.strip(),
        sending_facility=(
            _first_extension(document, _CUSTODIAN_ID) or _first_extension(document, _AUTHOR_ORG_ID)
        ),
        document_code=code,
        control_id=_instance_id(document.find(_ID)),
    )
    return CdaDocument(document, header)


def patient_key_of_cda(document: etree._Element) -> PatientKey:
    """Ordering key ``extension^root`` of the first patientRole id with an extension."""
    ordering = ""
    identifiers: list[str] = []
    for element in document.iterfind(_PATIENT_ID):
        extension = (element.get("extension") or "").strip()
        if not extension:
            continue
        if not ordering:
            ordering = f"{extension}^{(element.get('root') or '').strip()}"
        identifiers.append(extension)
    return PatientKey(ordering, tuple(identifiers))


def parse_cda(payload: bytes, listener: ListenerConfig | None) -> ParsedContent:
    """The content parser of type ``cda``; :class:`InputError` on hostile or non-CDA XML."""
    document = find_clinical_document(parse_xml(payload))
    cda = read_cda(document)
    return ParsedContent(
        cda, patient_key_of_cda(document), control_id=cda.header.control_id, facts={}
    )


register_content_type("cda", parse_cda, MEDIA_CDA_XML)
