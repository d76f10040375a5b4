"""Carry a document's action (replacement, deletion) from its DocumentReference to the other
resources that represent the document: the DiagnosticReport and its Observations.

Touches: nothing.

The DocumentReference says what happens to the document (``status``
``entered-in-error`` for a deletion, ``relatesTo`` ``replaces`` for a new
version: CDA ``relatedDocument[@typeCode='RPLC']``, or CI-SIS TXA-13 through
``cisis_action``). FHIR R4 gives the DiagnosticReport no ``relatesTo``; so
(decision, docs/mappings.md "lab fidelity"):

- deletion: the DiagnosticReport and every Observation get ``status``
  ``entered-in-error`` (a withdrawn report must not leave final results
  behind, e.g. for SCAD); Specimens keep theirs (the sample was taken);
- replacement: the DiagnosticReport gets the replaced document's id, when
  known, as an ``identifier`` with ``use`` ``old`` (R4: "no longer valid, but
  relevant for search": a search by the old id finds the new report), and
  ``status`` ``corrected`` when it was ``final`` (HL7 v2 OBR-25/OBX-11 ``C``,
  what CI-SIS sends for a replacement), also when the message does not say
  which document it replaces; Observations keep theirs (which ones changed is
  not said).

- :func:`replaced_identifiers`: the identifiers of ``relatesTo`` ``replaces``;
- :func:`apply_action`: the rules above, on one resource;
- rule ``cisis_report_action`` (``cisis-oru-mdm.yaml``, on the DiagnosticReport
  and Observations, declared after the DocumentReference): the action of the
  message, as ``cisis_action`` put it on the DocumentReference (its
  ``urn:eai:document-action`` tag, status and ``relatesTo``).
"""

from __future__ import annotations

from typing import Any

from mappings._context import MappingContext
from mappings._registry import mapping_function
from mappings.functions.cisis import ACTION_TAG_SYSTEM

__all__ = ["apply_action", "cisis_report_action", "replaced_identifiers"]

Json = dict[str, Any]


def replaced_identifiers(document: Json) -> list[Json]:
    """The identifiers of the documents ``document`` (a DocumentReference) replaces."""
    out = []
    for relation in document.get("relatesTo", []):
        target = relation.get("target", {}).get("identifier")
        if relation.get("code") == "replaces" and isinstance(target, dict) and target:
            out.append(target)
    return out


def apply_action(
    resource: Json, *, deleted: bool, replaces: list[Json], replaced: bool = False
) -> None:
    """Mark ``resource`` (a DiagnosticReport or Observation) as the module docstring says:
    ``deleted``, or a new version of the documents ``replaces`` (``replaced``: a new
    version even when ``replaces`` is empty)."""
    kind = resource.get("resourceType")
    if deleted:
        resource["status"] = "entered-in-error"
        return
    if kind != "DiagnosticReport" or not (replaces or replaced):
        return
    identifiers = resource.get("identifier", [])
    known = [{k: v for k, v in i.items() if k != "use"} for i in identifiers]
    for target in replaces:
        plain = {k: v for k, v in target.items() if k != "use"}
        if plain not in known:
            identifiers.append({"use": "old", **plain})
            known.append(plain)
    if identifiers:
        resource["identifier"] = identifiers
    if resource.get("status") == "final":
        resource["status"] = "corrected"


@mapping_function("cisis_report_action")
def cisis_report_action(ctx: MappingContext) -> None:
    """The DocumentReference's deletion or replacement, carried to this resource."""
    documents = [
        resource
        for instances in ctx.instances.values()
        for resource in instances
        if resource.get("resourceType") == "DocumentReference"
    ]
    if not documents:
        raise ValueError("cisis_report_action needs the DocumentReference declared before")
    actions = {
        tag.get("code")
        for d in documents
        for tag in d.get("meta", {}).get("tag", [])
        if tag.get("system") == ACTION_TAG_SYSTEM
    }
    deleted = "delete" in actions or any(d.get("status") == "entered-in-error" for d in documents)
    replaces = [i for d in documents for i in replaced_identifiers(d)]
    apply_action(ctx.resource, deleted=deleted, replaces=replaces, replaced="replace" in actions)
