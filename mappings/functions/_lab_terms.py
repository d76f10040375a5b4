"""The CR-BIO template ids and the FHIR codes and tags the lab mapping writes.

Touches: nothing.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from mappings.functions.cda_types import HL7

__all__ = [
    "ABSENT",
    "BATTERY",
    "COMMENT",
    "ENTRY",
    "ISOLATE",
    "LAB_CATEGORY",
    "LAB_OBSERVATION",
    "LOINC",
    "LOINC_OID",
    "NORMAL_RANGE",
    "NO_LOINC_TAG",
    "RANGE_TEXT_TAG",
    "REPORT_CATEGORY",
    "SPECIMEN_COLLECTION",
    "SPECIMEN_RECEIVED",
    "STATUS",
    "has_template",
]

Element = etree._Element
Json = dict[str, Any]
_Q = f"{{{HL7}}}"

ENTRY = "1.3.6.1.4.1.19376.1.3.1"
LAB_OBSERVATION = "1.3.6.1.4.1.19376.1.3.1.6"
BATTERY = "1.3.6.1.4.1.19376.1.3.1.4"
ISOLATE = "1.3.6.1.4.1.19376.1.3.1.5"
SPECIMEN_COLLECTION = "1.3.6.1.4.1.19376.1.3.1.2"
SPECIMEN_RECEIVED = "1.3.6.1.4.1.19376.1.3.1.3"
COMMENT = "1.3.6.1.4.1.19376.1.5.3.1.4.2"
LOINC_OID = "2.16.840.1.113883.6.1"
LOINC = "http://loinc.org"

NO_LOINC_TAG: Json = {
    "system": "urn:eai:mapping-flag",
    "code": "no-loinc",
    "display": "result code without LOINC coding: local code kept",
}
RANGE_TEXT_TAG: Json = {
    "system": "urn:eai:mapping-flag",
    "code": "range-text-differs",
    "display": "reference range low equals high but its text differs: bounds kept as given",
}
LAB_CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory",
            "display": "Laboratory",
        }
    ]
}
REPORT_CATEGORY = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]
}
NORMAL_RANGE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/referencerange-meaning",
            "code": "normal",
            "display": "Normal Range",
        }
    ]
}
ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
# CDA act statusCode -> Observation.status (HL7 CDA to FHIR mapping guide).
STATUS = {
    "completed": "final",
    "active": "preliminary",
    "aborted": "cancelled",
    "cancelled": "cancelled",
    "nullified": "entered-in-error",
    "held": "registered",
    "new": "registered",
    "suspended": "registered",
}


_TEMPLATE_ID = f"{_Q}templateId"


def has_template(element: Element | None, root: str) -> bool:
    if element is None:
        return False
    for template in element.iterchildren(_TEMPLATE_ID):
        if template.get("root") == root:
            return True
    return False
