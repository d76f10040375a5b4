"""Map the results of a CR-BIO (level 3 lab report) to Observation, Specimen, DiagnosticReport.

Touches: nothing.

CR-BIO (ANS CI-SIS, ``BIO-CR-BIO_2024.01``; IHE PaLM XD-LAB) nests results as
``section`` > ``entry`` (Laboratory Report Data Processing Entry,
``1.3.6.1.4.1.19376.1.3.1``) > ``act`` > ``entryRelationship``:

- ``observation`` with template ``1.3.6.1.4.1.19376.1.3.1.6`` (Laboratory
  Observation): one result -> one ``Observation``;
- ``organizer`` BATTERY (``1.3.6.1.4.1.19376.1.3.1.4``) or isolate CLUSTER
  (``1.3.6.1.4.1.19376.1.3.1.5``): a group -> one grouping ``Observation``
  whose ``hasMember`` lists what it contains (batteries nest: antibiogram in
  an isolate);
- ``procedure`` Specimen Collection (``1.3.6.1.4.1.19376.1.3.1.2``) -> one
  ``Specimen`` (type from ``participant[PRD]/participantRole/playingEntity/code``,
  collection time, reception time from the ``1.3.6.1.4.1.19376.1.3.1.3`` act);
  an isolate's ``specimen`` -> a ``Specimen`` whose ``parent`` is the collected one.

Decisions (docs/mappings.md, "CR-BIO"):

- the count of result ``Observation`` (those without ``hasMember``) equals the
  count of ``1.3.6.1.4.1.19376.1.3.1.6`` observations; previous results
  (``entryRelationship[@typeCode='REFR']``) are not mapped;
- a result whose code has no LOINC coding keeps its code as given and carries
  ``meta.tag`` ``urn:eai:mapping-flag#no-loinc``;
- IVL_PQ with one bound -> ``valueQuantity`` with a comparator (``inclusive``
  true: ``>=``/``<=``, false: ``>``/``<``); with two -> ``valueRange``;
- a reference range interpreted ``N`` gets ``type`` ``referencerange-meaning#normal``;
  one whose low equals its high while its narrative ``text`` says something else
  (``0.27-4.2`` over ``<low value="4.2"/><high value="4.2"/>``) is copied as given,
  text included, and the Observation carries the warning ``meta.tag``
  ``urn:eai:mapping-flag#range-text-differs`` (the bounds are suspect: read the text);
- a comment (Comment Entry ``1.3.6.1.4.1.19376.1.5.3.1.4.2``) becomes ``note`` of
  what carries it: an observation or organizer, or, for an ``act`` holding results
  (the entry's act, e.g. the microbiology "Traitement immédiat"), every top-level
  result and group of that act (R4 DiagnosticReport has no ``note``).

This module holds the entry points; the template ids and FHIR codes are in
:mod:`mappings.functions._lab_terms`, the resources built element by element in
:mod:`mappings.functions._lab_builder`, values and ranges in
:mod:`mappings.functions._lab_values`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from mappings.functions._lab_builder import Builder, LabReport
from mappings.functions._lab_terms import (
    BATTERY,
    ENTRY,
    ISOLATE,
    LAB_OBSERVATION,
    LOINC,
    NO_LOINC_TAG,
    RANGE_TEXT_TAG,
    REPORT_CATEGORY,
    SPECIMEN_COLLECTION,
    has_template,
)
from mappings.functions._lab_values import time_of
from mappings.functions.cda_types import HL7, NS

__all__ = [
    "BATTERY",
    "ISOLATE",
    "LAB_OBSERVATION",
    "NO_LOINC_TAG",
    "RANGE_TEXT_TAG",
    "SPECIMEN_COLLECTION",
    "Built",
    "Declared",
    "LabReport",
    "declared_elements",
    "lab_report",
    "lab_report_from",
    "result_observations",
]

Element = etree._Element
Json = dict[str, Any]

_Q = f"{{{HL7}}}"
_RESULTS = etree.XPath(
    f"//hl7:observation[hl7:templateId/@root='{LAB_OBSERVATION}']", namespaces=NS
)


def result_observations(doc: Element) -> list[Element]:
    """Every Laboratory Observation (``1.3.6.1.4.1.19376.1.3.1.6``) of the document, in order."""
    found = _RESULTS(doc)
    return [e for e in found if isinstance(e, etree._Element)]


@dataclass
class Built:
    """What :func:`lab_report_from` made for the resources a mapping declared."""

    resources: dict[Element, Json] = field(default_factory=dict)
    """The JSON of each declared element (result, group, specimen)."""
    status: str = "final"
    results: list[Json] = field(default_factory=list)
    """References to the top-level results and groups, for DiagnosticReport.result."""
    specimens: list[Json] = field(default_factory=list)


def lab_report(
    doc: Element,
    new_url: Callable[[], str],
    *,
    subject: Json | None = None,
    code: Json | None = None,
    issued: str = "",
    performer: list[Json] | None = None,
    identifiers: list[Json] | None = None,
) -> LabReport:
    """Build the results of the CR-BIO ``doc`` (its ``ClinicalDocument`` element).

    ``new_url`` gives the full URL (``urn:uuid:...``) of each new resource;
    ``subject`` is the Patient reference. The ``DiagnosticReport`` is last in
    ``resources`` and also in ``report``: status ``final`` when every result
    act is ``completed``, else ``partial``.
    """
    out = LabReport()

    def add(element: Element, resource: Json) -> Json:
        url = new_url()
        out.resources.append((url, resource))
        return {"reference": url}

    builder = Builder(doc, add, subject)
    builder.out = out
    body = doc.find(f"{_Q}component/{_Q}structuredBody")
    results = list(builder.walk(body, [])) if body is not None else []
    report: Json = {
        "resourceType": "DiagnosticReport",
        "status": _report_status(doc),
        "category": [REPORT_CATEGORY],
        "code": code or {"coding": [{"system": LOINC, "code": "11502-2"}]},
    }
    if identifiers:
        report["identifier"] = identifiers
    if subject:
        report["subject"] = subject
    if issued:
        report["issued"] = issued
    effective = time_of(doc.find(f"{_Q}documentationOf/{_Q}serviceEvent/{_Q}effectiveTime"))
    if effective:
        report["effectiveDateTime"] = effective
    if performer:
        report["performer"] = performer
    specimens = [
        {"reference": url} for url, r in builder.out.resources if r["resourceType"] == "Specimen"
    ]
    if specimens:
        report["specimen"] = specimens
    if results:
        report["result"] = results
    add(doc, report)
    out.report = report
    return out


def lab_report_from(
    doc: Element, refs: dict[Element, Json], *, subject: Json | None = None
) -> Built:
    """The results of ``doc`` for resources already declared by a mapping.

    ``refs`` gives the Reference of the resource declared for each result
    observation, group organizer and specimen element (collection procedure,
    or an isolate's ``specimen``). Every one gets its JSON, also those outside
    the usual entry structure (built then without grouping or specimen).
    """
    built = Built(status=_report_status(doc))

    def add(element: Element, resource: Json) -> Json:
        built.resources[element] = resource
        ref = refs.get(element)
        if ref is None:
            raise ValueError("a CR-BIO element has no declared resource")
        return ref

    builder = Builder(doc, add, subject)
    body = doc.find(f"{_Q}component/{_Q}structuredBody")
    built.results = list(builder.walk(body, [])) if body is not None else []
    for element in refs:
        if element in built.resources:
            continue
        if element.tag == f"{_Q}procedure":
            built.resources[element] = builder.specimen(element)
        elif element.tag == f"{_Q}specimen":
            built.resources[element] = builder.isolate(element, [])
        elif element.tag == f"{_Q}organizer":
            members = list(builder.walk(element, []))
            built.resources[element] = builder.group(element, members, [])
        else:
            built.resources[element] = builder.result(element, [])
    specimen_tags = (f"{_Q}procedure", f"{_Q}specimen")
    built.specimens = [ref for element, ref in refs.items() if element.tag in specimen_tags]
    return built


def _report_status(doc: Element) -> str:
    codes = set()
    for entry in doc.iter(f"{_Q}entry"):
        if has_template(entry, ENTRY):
            status = entry.find(f"{_Q}act/{_Q}statusCode")
            codes.add(status.get("code") if status is not None else "")
    return "final" if codes <= {"completed"} else "partial"


@dataclass
class Declared:
    """The elements a CR-BIO mapping declares resources for, in document order."""

    specimens: list[Element] = field(default_factory=list)
    groups: list[Element] = field(default_factory=list)
    results: list[Element] = field(default_factory=list)


def declared_elements(doc: Element) -> Declared:
    """One pass over ``doc``: what the XPaths of :mod:`mappings.functions.cda` select
    (specimen collections and isolate specimens; batteries and isolates holding a
    result; Laboratory Observations)."""
    out = Declared()
    tags = (f"{_Q}observation", f"{_Q}organizer", f"{_Q}procedure", f"{_Q}specimen")
    for element in doc.iter(*tags):
        tag = element.tag
        if tag == f"{_Q}observation":
            if has_template(element, LAB_OBSERVATION):
                out.results.append(element)
        elif tag == f"{_Q}organizer":
            if (has_template(element, BATTERY) or has_template(element, ISOLATE)) and any(
                has_template(o, LAB_OBSERVATION) for o in element.iter(f"{_Q}observation")
            ):
                out.groups.append(element)
        elif tag == f"{_Q}procedure":
            if has_template(element, SPECIMEN_COLLECTION):
                out.specimens.append(element)
        elif has_template(element.getparent(), ISOLATE):
            out.specimens.append(element)
    return out
