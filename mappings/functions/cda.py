"""Registered functions of the CDA mappings (``cda-document``, ``crbio``): identifiers, times,
the attached document's hash and size, and the CR-BIO results.

Touches: nothing.

Transforms (``transform: [{fn: name}]``):

- ``cda_ii_system`` / ``cda_ii_value``: ``from: ["@root", "@extension"]`` of an
  II -> Identifier.system / value (``urn:oid:<root>`` | extension, or
  ``urn:ietf:rfc:3986`` | ``urn:oid:<root>`` / ``urn:uuid:<root>`` without extension);
- ``cda_instant``: TS -> FHIR ``instant`` (DocumentReference.date needs seconds
  and an offset).

Rules (``- fn: name``):

- ``cda_attachment`` (on a DocumentReference): ``content[0].attachment`` gets
  ``size`` and ``hash`` (base64 SHA-1) of the exact bytes of the document as
  received (the whole payload, stylesheet root included for a self-presenting
  document); ``cda_attachment_data`` adds those bytes as ``data`` (base64):
  a mapping without it keeps Bundles small (the journal keeps the payload);
- ``crbio_results`` (on the DiagnosticReport): fills the ``specimen``,
  ``lab_group`` and ``lab_result`` resources the mapping declares with a
  resource-level ``for_each`` (one per element of :data:`SPECIMENS`,
  :data:`GROUPS`, :data:`RESULTS`, which the mapping must use verbatim) and
  sets the report's ``result``, ``specimen`` and ``status``; a new version
  (``relatedDocument[@typeCode='RPLC']``) keeps the replaced document's id as an
  ``identifier`` ``use`` ``old`` and turns ``final`` into ``corrected``
  (:mod:`mappings.functions.report_action`).
"""

from __future__ import annotations

import base64
from typing import Any

from lxml import etree

from mappings._context import MappingContext
from mappings._registry import mapping_function
from mappings.functions import cda_lab
from mappings.functions.cda_document import attachment_of, clinical_document
from mappings.functions.cda_types import HL7, identifier, ii_identifier, ts_instant
from mappings.functions.report_action import apply_action

__all__ = [
    "GROUPS",
    "RESULTS",
    "SPECIMENS",
    "cda_attachment",
    "cda_attachment_data",
    "cda_ii_system",
    "cda_ii_value",
    "cda_instant",
    "crbio_results",
]

_T = "hl7:templateId/@root"
RESULTS = f"//hl7:observation[{_T}='{cda_lab.LAB_OBSERVATION}']"
"""``for_each`` of the ``lab_result`` resource: every Laboratory Observation."""
GROUPS = (
    f"//hl7:organizer[{_T}='{cda_lab.BATTERY}' or {_T}='{cda_lab.ISOLATE}']"
    f"[.//hl7:observation[{_T}='{cda_lab.LAB_OBSERVATION}']]"
)
"""``for_each`` of the ``lab_group`` resource: batteries and isolates holding results."""
SPECIMENS = (
    f"//hl7:procedure[{_T}='{cda_lab.SPECIMEN_COLLECTION}']"
    f" | //hl7:organizer[{_T}='{cda_lab.ISOLATE}']/hl7:specimen"
)
"""``for_each`` of the ``specimen`` resource: collected specimens and isolates."""

Element = etree._Element


def _ii(value: Any) -> dict[str, str]:
    parts = [str(v).strip() for v in value] if isinstance(value, list) else [str(value).strip()]
    root, extension = (parts + ["", ""])[:2]
    return ii_identifier(root, extension) or {}


@mapping_function("cda_ii_system", kind="transform")
def cda_ii_system(value: Any) -> str:
    """``[root, extension]`` of an II -> Identifier.system (see the module docstring)."""
    return _ii(value).get("system", "")


@mapping_function("cda_ii_value", kind="transform")
def cda_ii_value(value: Any) -> str:
    """``[root, extension]`` of an II -> Identifier.value."""
    return _ii(value).get("value", "")


@mapping_function("cda_instant", kind="transform")
def cda_instant(value: Any) -> str:
    """CDA TS -> FHIR instant; "" for a date without a time."""
    return ts_instant(str(value))


def document_element(document: Any) -> Element:
    """The ``ClinicalDocument`` element of what the ``cda`` source kind parsed."""
    element = getattr(document, "element", document)
    if isinstance(element, etree._ElementTree):
        element = element.getroot()
    if not isinstance(element, etree._Element):
        raise ValueError("the source is not a CDA document")
    return clinical_document(element.getroottree().getroot())


def document_bytes(document: Any) -> bytes:
    """The exact bytes of the document as received (``raw`` of the parsed source).

    Falls back to the serialised tree when the source kind kept no bytes (the
    hash then covers that serialisation, not the received bytes).
    """
    raw = getattr(document, "raw", None)
    if isinstance(raw, bytes | bytearray):
        return bytes(raw)
    root = document_element(document).getroottree()
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _attachment(ctx: MappingContext) -> dict[str, Any]:
    contents = ctx.resource.setdefault("content", [])
    if not contents:
        contents.append({"attachment": {"contentType": "text/xml"}})
    attachment: dict[str, Any] = contents[0].setdefault("attachment", {})
    attachment.setdefault("contentType", "text/xml")
    return attachment


@mapping_function("cda_attachment")
def cda_attachment(ctx: MappingContext) -> None:
    """``content[0].attachment``: size and hash of the document's exact bytes."""
    _attachment(ctx).update(attachment_of(document_bytes(ctx.document)))


@mapping_function("cda_attachment_data")
def cda_attachment_data(ctx: MappingContext) -> None:
    """``content[0].attachment.data``: the document itself, base64 (the exact bytes)."""
    _attachment(ctx)["data"] = base64.b64encode(document_bytes(ctx.document)).decode("ascii")


@mapping_function("crbio_results")
def crbio_results(ctx: MappingContext) -> None:
    """Fill the declared specimens, groups and results; set the report's references."""
    doc = document_element(ctx.document)
    found = cda_lab.declared_elements(doc)  # what SPECIMENS, GROUPS, RESULTS select, in one pass
    plan = {"specimen": found.specimens, "lab_group": found.groups, "lab_result": found.results}
    urls: dict[Element, dict[str, str]] = {}
    resources: dict[Element, dict[str, Any]] = {}
    for local_id, elements in plan.items():
        instances = ctx.instances.get(local_id, [])
        if len(instances) != len(elements):
            raise ValueError(
                f"resource {local_id!r} must be declared with for_each as in "
                f"mappings.functions.cda ({len(elements)} elements, {len(instances)} resources)"
            )
        for element, resource in zip(elements, instances, strict=True):
            urls[element] = {"reference": ctx.urls[id(resource)]}
            resources[element] = resource
    subject = ctx.resource.get("subject")
    built = cda_lab.lab_report_from(doc, urls, subject=subject)
    for element, json in built.resources.items():
        target = resources[element]
        target.update({k: v for k, v in json.items() if k != "resourceType"})
    report = ctx.resource
    report["status"] = built.status
    if built.specimens:
        report["specimen"] = built.specimens
    if built.results:
        report["result"] = built.results
    parents = doc.findall(
        f"{{{HL7}}}relatedDocument[@typeCode='RPLC']/{{{HL7}}}parentDocument/{{{HL7}}}id"
    )
    replaced = [i for i in map(identifier, parents) if i]
    apply_action(report, deleted=False, replaces=replaced)
