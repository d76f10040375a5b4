"""Builds the FHIR resources of a CR-BIO's results: Observations, groups, Specimens, notes.

Touches: nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from mappings.functions._lab_terms import (
    BATTERY,
    COMMENT,
    ENTRY,
    ISOLATE,
    LAB_CATEGORY,
    LAB_OBSERVATION,
    LOINC,
    NO_LOINC_TAG,
    RANGE_TEXT_TAG,
    SPECIMEN_COLLECTION,
    SPECIMEN_RECEIVED,
    STATUS,
    has_template,
)
from mappings.functions._lab_values import (
    observation_value,
    point_range_with_other_text,
    reference_range,
    time_of,
)
from mappings.functions.cda_types import (
    HL7,
    codeable_concept,
    first_child,
    identifier,
    text_of,
)

__all__ = ["Builder", "LabReport"]

Element = etree._Element
Json = dict[str, Any]
_Q = f"{{{HL7}}}"
_IDS = etree.XPath("//*[@ID]")
_OBSERVATION = f"{_Q}observation"
_ORGANIZER = f"{_Q}organizer"
_ACT = f"{_Q}act"
_TEXT = f"{_Q}text"
_NO_RESULTS = frozenset({f"{_Q}observation", f"{_Q}procedure", f"{_Q}observationMedia"})


@dataclass
class LabReport:
    """What :func:`lab_report` built: resources in bundle order, keyed by their full URL."""

    resources: list[tuple[str, Json]] = field(default_factory=list)
    report: Json = field(default_factory=dict)
    result_count: int = 0
    """How many result Observations (= Laboratory Observations in the CDA)."""
    group_count: int = 0


class Builder:
    """Builds the resources of one CR-BIO, element by element, handing each to ``add``."""

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
            proc = first_child(rel, f"{_Q}procedure")
            if proc is not None and has_template(proc, SPECIMEN_COLLECTION):
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
        collected = time_of(first_child(proc, f"{_Q}effectiveTime"))
        if collected:
            out["collection"] = {"collectedDateTime": collected}
        for rel in proc.iterchildren(f"{_Q}entryRelationship"):
            act = first_child(rel, f"{_Q}act")
            if act is not None and has_template(act, SPECIMEN_RECEIVED):
                received = time_of(first_child(act, f"{_Q}effectiveTime"))
                if received:
                    out["receivedTime"] = received
        return out

    def isolate_specimen(self, organizer: Element, parents: list[Json]) -> list[Json]:
        specimen = first_child(organizer, f"{_Q}specimen")
        if specimen is None:
            return parents
        return [self.add(specimen, self.isolate(specimen, parents))]

    def isolate(self, specimen: Element, parents: list[Json]) -> Json:
        role = first_child(specimen, f"{_Q}specimenRole")
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
            tag = child.tag
            if tag == _OBSERVATION and has_template(child, LAB_OBSERVATION):
                yield self.add(child, self.result(child, specimens))
            elif tag == _ORGANIZER and (
                has_template(child, BATTERY) or has_template(child, ISOLATE)
            ):
                inner = specimens
                if has_template(child, ISOLATE):
                    inner = self.isolate_specimen(child, specimens)
                members = list(self.walk(child, inner))
                if members:
                    yield self.add(child, self.group(child, members, inner))
            elif tag == _ACT and has_template(child, COMMENT):
                continue  # read as a note by what carries it
            elif tag == _ACT:
                inner = specimens
                if has_template(child.getparent(), ENTRY):
                    inner = self.specimens_of(child) or specimens
                yield from self.with_notes(child, list(self.walk(child, inner)))
            elif tag in _NO_RESULTS:
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
        status = first_child(element, f"{_Q}statusCode")
        code = (status.get("code") if status is not None else "") or ""
        return {
            "resourceType": "Observation",
            "status": STATUS.get(code, "final"),
            "category": [LAB_CATEGORY],
        }

    def result(self, obs: Element, specimens: list[Json]) -> Json:
        self.out.result_count += 1
        out = self.common(obs)
        code_el = first_child(obs, f"{_Q}code")
        code = codeable_concept(code_el, self.ids) or {"text": "unknown"}
        out["code"] = code
        if not any(c.get("system") == LOINC for c in code.get("coding", ())):
            out["meta"] = {"tag": [NO_LOINC_TAG]}
        ids = [i for i in map(identifier, obs.findall(f"{_Q}id")) if i]
        if ids:
            out["identifier"] = ids
        if self.subject:
            out["subject"] = self.subject
        when = time_of(first_child(obs, f"{_Q}effectiveTime"))
        if when:
            out["effectiveDateTime"] = when
        out.update(observation_value(obs, self.ids))
        interpretations = [
            c
            for c in (codeable_concept(i) for i in obs.findall(f"{_Q}interpretationCode"))
            if c is not None
        ]
        if interpretations:
            out["interpretation"] = interpretations
        method = codeable_concept(first_child(obs, f"{_Q}methodCode"), self.ids)
        if method:
            out["method"] = method
        if specimens:
            out["specimen"] = specimens[0]
        found = (reference_range(r, self.ids) for r in obs.findall(f"{_Q}referenceRange"))
        ranges = [r for r in found if r]
        if ranges:
            out["referenceRange"] = ranges
            if any(point_range_with_other_text(r) for r in ranges):
                out.setdefault("meta", {}).setdefault("tag", []).append(dict(RANGE_TEXT_TAG))
        notes = self.notes(obs)
        if notes:
            out["note"] = notes
        return out

    def notes(self, element: Element) -> list[Json]:
        notes = []
        for rel in element.iterchildren(f"{_Q}entryRelationship", f"{_Q}component"):
            act = first_child(rel, f"{_Q}act")
            if act is not None and has_template(act, COMMENT):
                text = text_of(first_child(act, f"{_Q}text"), self.ids)
                if text:
                    notes.append({"text": text})
        return notes

    def group(self, organizer: Element, members: list[Json], specimens: list[Json]) -> Json:
        self.out.group_count += 1
        out = self.common(organizer)
        code = codeable_concept(first_child(organizer, f"{_Q}code"), self.ids)
        if code is None and has_template(organizer, ISOLATE):
            organism = organizer.find(f"{_Q}specimen/{_Q}specimenRole/{_Q}specimenPlayingEntity")
            code = codeable_concept(
                first_child(organism, f"{_Q}code") if organism is not None else None, self.ids
            )
        out["code"] = code or {"text": "isolate" if has_template(organizer, ISOLATE) else "battery"}
        if self.subject:
            out["subject"] = self.subject
        when = time_of(first_child(organizer, f"{_Q}effectiveTime"))
        if when:
            out["effectiveDateTime"] = when
        if specimens:
            out["specimen"] = specimens[0]
        notes = self.notes(organizer)
        if notes:
            out["note"] = notes
        out["hasMember"] = members
        return out


def _children(element: Element) -> Iterator[Element]:
    for child in element:
        tag = child.tag
        if isinstance(tag, str) and tag != _TEXT:
            yield child
