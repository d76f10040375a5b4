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
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from mappings.functions.cda_types import (
    HL7,
    NS,
    XSI_TYPE,
    codeable_concept,
    identifier,
    quantity,
    range_of,
    text_of,
    ts_datetime,
)

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
_LAB_CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory",
            "display": "Laboratory",
        }
    ]
}
_REPORT_CATEGORY = {
    "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "LAB"}]
}
_NORMAL_RANGE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/referencerange-meaning",
            "code": "normal",
            "display": "Normal Range",
        }
    ]
}
_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
# CDA act statusCode -> Observation.status (HL7 CDA to FHIR mapping guide).
_STATUS = {
    "completed": "final",
    "active": "preliminary",
    "aborted": "cancelled",
    "cancelled": "cancelled",
    "nullified": "entered-in-error",
    "held": "registered",
    "new": "registered",
    "suspended": "registered",
}

_Q = f"{{{HL7}}}"
_RESULTS = etree.XPath(
    f"//hl7:observation[hl7:templateId/@root='{LAB_OBSERVATION}']", namespaces=NS
)
_IDS = etree.XPath("//*[@ID]")


def result_observations(doc: Element) -> list[Element]:
    """Every Laboratory Observation (``1.3.6.1.4.1.19376.1.3.1.6``) of the document, in order."""
    found = _RESULTS(doc)
    return [e for e in found if isinstance(e, etree._Element)]


@dataclass
class LabReport:
    """What :func:`lab_report` built: resources in bundle order, keyed by their full URL."""

    resources: list[tuple[str, Json]] = field(default_factory=list)
    report: Json = field(default_factory=dict)
    result_count: int = 0
    """How many result Observations (= Laboratory Observations in the CDA)."""
    group_count: int = 0


@dataclass
class Built:
    """What :func:`lab_report_from` made for the resources a mapping declared."""

    resources: dict[Element, Json] = field(default_factory=dict)
    """The JSON of each declared element (result, group, specimen)."""
    status: str = "final"
    results: list[Json] = field(default_factory=list)
    """References to the top-level results and groups, for DiagnosticReport.result."""
    specimens: list[Json] = field(default_factory=list)


class _Builder:
    def __init__(
        self,
        doc: Element,
        add: Callable[[Element, Json], Json],
        subject: Json | None,
    ) -> None:
        self.doc = doc
        self._add = add
        self.subject = subject
        self.out = LabReport()
        self._ids: dict[str, Element] | None = None
        self._built: dict[int, Json] = {}
        """``id(reference)`` -> the resource it points to (to add an act's notes)."""

    @property
    def ids(self) -> dict[str, Element]:
        if self._ids is None:
            found = _IDS(self.doc)
            self._ids = {
                str(e.get("ID")): e
                for e in (found if isinstance(found, list) else [])
                if isinstance(e, etree._Element)
            }
        return self._ids

    def add(self, element: Element, resource: Json) -> Json:
        ref = self._add(element, resource)
        self._built[id(ref)] = resource
        return ref

    # --- specimens ---------------------------------------------------------------------------

    def specimens_of(self, act: Element) -> list[Json]:
        """One Specimen per Specimen Collection procedure directly under ``act``."""
        refs = []
        for rel in act.iterchildren(f"{_Q}entryRelationship"):
            proc = rel.find(f"{_Q}procedure")
            if proc is not None and _has_template(proc, SPECIMEN_COLLECTION):
                refs.append(self.add(proc, self.specimen(proc)))
        return refs

    def specimen(self, proc: Element) -> Json:
        out: Json = {"resourceType": "Specimen"}
        role = proc.find(f"{_Q}participant/{_Q}participantRole")
        if role is not None:
            ids = [i for i in map(identifier, role.findall(f"{_Q}id")) if i]
            if ids:
                out["identifier"] = ids
            kind = codeable_concept(role.find(f"{_Q}playingEntity/{_Q}code"), self.ids)
            if kind:
                out["type"] = kind
        if self.subject:
            out["subject"] = self.subject
        collected = _time_of(proc.find(f"{_Q}effectiveTime"))
        if collected:
            out["collection"] = {"collectedDateTime": collected}
        for rel in proc.iterchildren(f"{_Q}entryRelationship"):
            act = rel.find(f"{_Q}act")
            if act is not None and _has_template(act, SPECIMEN_RECEIVED):
                received = _time_of(act.find(f"{_Q}effectiveTime"))
                if received:
                    out["receivedTime"] = received
        return out

    def isolate_specimen(self, organizer: Element, parents: list[Json]) -> list[Json]:
        specimen = organizer.find(f"{_Q}specimen")
        if specimen is None:
            return parents
        return [self.add(specimen, self.isolate(specimen, parents))]

    def isolate(self, specimen: Element, parents: list[Json]) -> Json:
        role = specimen.find(f"{_Q}specimenRole")
        out: Json = {"resourceType": "Specimen"}
        if role is None:
            return out
        ids = [i for i in map(identifier, role.findall(f"{_Q}id")) if i]
        if ids:
            out["identifier"] = ids
        kind = codeable_concept(role.find(f"{_Q}specimenPlayingEntity/{_Q}code"), self.ids)
        if kind:
            out["type"] = kind
        if self.subject:
            out["subject"] = self.subject
        if parents:
            out["parent"] = parents
        return out

    # --- observations ------------------------------------------------------------------------

    def walk(self, element: Element, specimens: list[Json]) -> Iterator[Json]:
        """The references of the top-level results and groups found under ``element``."""
        for child in _children(element):
            if child.tag == f"{_Q}observation" and _has_template(child, LAB_OBSERVATION):
                yield self.add(child, self.result(child, specimens))
            elif child.tag == f"{_Q}organizer" and (
                _has_template(child, BATTERY) or _has_template(child, ISOLATE)
            ):
                inner = specimens
                if _has_template(child, ISOLATE):
                    inner = self.isolate_specimen(child, specimens)
                members = list(self.walk(child, inner))
                if members:
                    yield self.add(child, self.group(child, members, inner))
            elif child.tag == f"{_Q}act" and _has_template(child, COMMENT):
                continue  # read as a note by what carries it
            elif child.tag == f"{_Q}act":
                inner = specimens
                if _has_template(child.getparent(), ENTRY):
                    inner = self.specimens_of(child) or specimens
                yield from self.with_notes(child, list(self.walk(child, inner)))
            elif child.tag in (f"{_Q}observation", f"{_Q}procedure", f"{_Q}observationMedia"):
                continue  # other clinical statements hold no lab results of their own
            else:
                yield from self.walk(child, specimens)

    def with_notes(self, act: Element, refs: list[Json]) -> list[Json]:
        """``refs`` (the top-level results and groups under ``act``), each resource given
        the comments ``act`` carries as notes."""
        notes = self.notes(act)
        if notes:
            for ref in refs:
                resource = self._built.get(id(ref))
                if resource is not None:
                    resource["note"] = resource.get("note", []) + [dict(n) for n in notes]
        return refs

    @staticmethod
    def common(element: Element) -> Json:
        status = element.find(f"{_Q}statusCode")
        code = (status.get("code") if status is not None else "") or ""
        return {
            "resourceType": "Observation",
            "status": _STATUS.get(code, "final"),
            "category": [_LAB_CATEGORY],
        }

    def result(self, obs: Element, specimens: list[Json]) -> Json:
        self.out.result_count += 1
        out = self.common(obs)
        code_el = obs.find(f"{_Q}code")
        code = codeable_concept(code_el, self.ids) or {"text": "unknown"}
        out["code"] = code
        if not any(c.get("system") == LOINC for c in code.get("coding", ())):
            out["meta"] = {"tag": [NO_LOINC_TAG]}
        ids = [i for i in map(identifier, obs.findall(f"{_Q}id")) if i]
        if ids:
            out["identifier"] = ids
        if self.subject:
            out["subject"] = self.subject
        when = _time_of(obs.find(f"{_Q}effectiveTime"))
        if when:
            out["effectiveDateTime"] = when
        out.update(self.value(obs))
        interpretations = [
            c
            for c in (codeable_concept(i) for i in obs.findall(f"{_Q}interpretationCode"))
            if c is not None
        ]
        if interpretations:
            out["interpretation"] = interpretations
        method = codeable_concept(obs.find(f"{_Q}methodCode"), self.ids)
        if method:
            out["method"] = method
        if specimens:
            out["specimen"] = specimens[0]
        ranges = [r for r in map(self.reference_range, obs.findall(f"{_Q}referenceRange")) if r]
        if ranges:
            out["referenceRange"] = ranges
            if any(_point_range_with_other_text(r) for r in ranges):
                out.setdefault("meta", {}).setdefault("tag", []).append(dict(RANGE_TEXT_TAG))
        notes = self.notes(obs)
        if notes:
            out["note"] = notes
        return out

    def value(self, obs: Element) -> Json:
        value = obs.find(f"{_Q}value")
        if value is None:
            return {}
        null = value.get("nullFlavor")
        if null:
            code = "not-applicable" if null == "NA" else "unknown"
            reason = {"coding": [{"system": _ABSENT, "code": code}], "text": null}
            return {"dataAbsentReason": reason}
        kind = (value.get(XSI_TYPE) or "").partition(":")[2] or value.get(XSI_TYPE) or ""
        if kind == "PQ":
            q = quantity(value)
            return {"valueQuantity": q} if q else {}
        if kind in ("REAL", "INT", "MO"):
            q = quantity(value)
            if q and kind == "INT" and isinstance(q["value"], int) and "unit" not in q:
                return {"valueInteger": q["value"]}
            return {"valueQuantity": q} if q else {}
        if kind == "IVL_PQ":
            return _interval_value(value)
        if kind in ("CD", "CE", "CV", "CO", "CS"):
            c = codeable_concept(value, self.ids)
            return {"valueCodeableConcept": c} if c else {}
        if kind == "BL":
            flag = value.get("value")
            return {"valueBoolean": flag == "true"} if flag in ("true", "false") else {}
        if kind in ("TS", "IVL_TS"):
            when = _time_of(value)
            return {"valueDateTime": when} if when else {}
        if kind == "RTO" or kind.startswith("RTO_"):
            num = quantity(value.find(f"{_Q}numerator"))
            den = quantity(value.find(f"{_Q}denominator"))
            ratio = {k: v for k, v in (("numerator", num), ("denominator", den)) if v}
            return {"valueRatio": ratio} if ratio else {}
        text = text_of(value, self.ids)  # ST, ED, SC and anything else readable
        return {"valueString": text} if text else {}

    def reference_range(self, rr: Element) -> Json | None:
        rng = rr.find(f"{_Q}observationRange")
        if rng is None:
            return None
        out: Json = {}
        value = rng.find(f"{_Q}value")
        if value is not None:
            bounds = range_of(value)
            if bounds:
                out.update(bounds)
            elif text_of(value, self.ids):
                out["text"] = text_of(value, self.ids)
        text = text_of(rng.find(f"{_Q}text"), self.ids)
        if text and "text" not in out:
            out["text"] = text
        if not out:
            return None
        interpretation = rng.find(f"{_Q}interpretationCode")
        if interpretation is not None and interpretation.get("code") == "N":
            out["type"] = _NORMAL_RANGE
        return out

    def notes(self, element: Element) -> list[Json]:
        notes = []
        for rel in element.iterchildren(f"{_Q}entryRelationship", f"{_Q}component"):
            act = rel.find(f"{_Q}act")
            if act is not None and _has_template(act, COMMENT):
                text = text_of(act.find(f"{_Q}text"), self.ids)
                if text:
                    notes.append({"text": text})
        return notes

    def group(self, organizer: Element, members: list[Json], specimens: list[Json]) -> Json:
        self.out.group_count += 1
        out = self.common(organizer)
        code = codeable_concept(organizer.find(f"{_Q}code"), self.ids)
        if code is None and _has_template(organizer, ISOLATE):
            organism = organizer.find(f"{_Q}specimen/{_Q}specimenRole/{_Q}specimenPlayingEntity")
            code = codeable_concept(
                organism.find(f"{_Q}code") if organism is not None else None, self.ids
            )
        out["code"] = code or {
            "text": "isolate" if _has_template(organizer, ISOLATE) else "battery"
        }
        if self.subject:
            out["subject"] = self.subject
        when = _time_of(organizer.find(f"{_Q}effectiveTime"))
        if when:
            out["effectiveDateTime"] = when
        if specimens:
            out["specimen"] = specimens[0]
        notes = self.notes(organizer)
        if notes:
            out["note"] = notes
        out["hasMember"] = members
        return out


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

    builder = _Builder(doc, add, subject)
    builder.out = out
    body = doc.find(f"{_Q}component/{_Q}structuredBody")
    results = list(builder.walk(body, [])) if body is not None else []
    report: Json = {
        "resourceType": "DiagnosticReport",
        "status": _report_status(doc),
        "category": [_REPORT_CATEGORY],
        "code": code or {"coding": [{"system": LOINC, "code": "11502-2"}]},
    }
    if identifiers:
        report["identifier"] = identifiers
    if subject:
        report["subject"] = subject
    if issued:
        report["issued"] = issued
    effective = _time_of(doc.find(f"{_Q}documentationOf/{_Q}serviceEvent/{_Q}effectiveTime"))
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

    builder = _Builder(doc, add, subject)
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
        if _has_template(entry, ENTRY):
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
            if _has_template(element, LAB_OBSERVATION):
                out.results.append(element)
        elif tag == f"{_Q}organizer":
            if (_has_template(element, BATTERY) or _has_template(element, ISOLATE)) and any(
                _has_template(o, LAB_OBSERVATION) for o in element.iter(f"{_Q}observation")
            ):
                out.groups.append(element)
        elif tag == f"{_Q}procedure":
            if _has_template(element, SPECIMEN_COLLECTION):
                out.specimens.append(element)
        elif _has_template(element.getparent(), ISOLATE):
            out.specimens.append(element)
    return out


def _interval_value(value: Element) -> Json:
    low, high = value.find(f"{_Q}low"), value.find(f"{_Q}high")
    has_low = low is not None and quantity(low) is not None
    has_high = high is not None and quantity(high) is not None
    if has_low and has_high:
        r = range_of(value)
        return {"valueRange": r} if r else {}
    if has_low and low is not None:
        q = quantity(low, ">" if low.get("inclusive") == "false" else ">=")
        return {"valueQuantity": q} if q else {}
    if has_high and high is not None:
        q = quantity(high, "<" if high.get("inclusive") == "false" else "<=")
        return {"valueQuantity": q} if q else {}
    center = value.find(f"{_Q}center")
    q = quantity(center)
    return {"valueQuantity": q} if q else {}


_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")


def _point_range_with_other_text(rng: Json) -> bool:
    """True when ``low`` equals ``high`` but the narrative text names another number
    (or none): the bounds were likely filled from one end of the range."""
    low, high, text = rng.get("low"), rng.get("high"), rng.get("text")
    if not low or not high or not text or low.get("value") != high.get("value"):
        return False
    numbers = {float(n.replace(",", ".")) for n in _NUMBER.findall(str(text))}
    return numbers != {float(low["value"])}


def _time_of(element: Element | None) -> str:
    """TS or IVL_TS -> dateTime: ``@value``, else ``center``, ``low``, ``high``."""
    if element is None:
        return ""
    if element.get("value"):
        return ts_datetime(element.get("value"))
    for part in ("center", "low", "high"):
        inner = element.find(f"{_Q}{part}")
        if inner is not None and inner.get("value"):
            return ts_datetime(inner.get("value"))
    return ""


def _children(element: Element) -> Iterator[Element]:
    for child in element:
        if isinstance(child.tag, str) and child.tag != f"{_Q}text":
            yield child


def _has_template(element: Element | None, root: str) -> bool:
    if element is None:
        return False
    return any(t.get("root") == root for t in element.iterchildren(f"{_Q}templateId"))
